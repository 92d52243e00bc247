"""`train.normalization: per_crop` (the embedded default's): the light on a
face (the whole crop darker or lighter) and a colour cast do not change
the network input; the face's own pattern does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fau.data import normalise
from fau.errors import FauError


@pytest.fixture(scope="module")
def face(shared) -> np.ndarray:
    """A real face photo, 64 x 64 RGB uint8 (the input size of the embedded
    default), its levels brought into 40..193 so the changes below clip nothing."""
    img = cv2.imread(str(shared / "faces" / "biden.jpg"))
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
    rgb = cv2.cvtColor(cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return (40 + rgb * 0.6).round().astype(np.uint8)


def _recoloured(img: np.ndarray, gain: float, shift: tuple[float, float, float]) -> np.ndarray:
    """The same crop darker or lighter, with a colour cast (kept inside 0..255)."""
    return np.clip(img.astype(np.float64) * gain + np.array(shift), 0, 255).round().astype(np.uint8)


def test_per_crop_input_ignores_light_and_colour_cast(face):
    # darker or lighter, with or without a colour cast: gone but for the
    # rounding to uint8; ImageNet's fixed statistics pass it on
    for gain, shift in ((0.7, (25.0, 25.0, 25.0)), (1.2, (-20.0, -20.0, -20.0)),
                        (0.7, (25.0, 10.0, -5.0)), (0.9, (10.0, 0.0, -10.0))):
        other = _recoloured(face, gain, shift)
        assert 5 < other.min() and other.max() < 250  # nothing clipped
        a, b = normalise(face, "per_crop"), normalise(other, "per_crop")
        assert a.shape == (3, 64, 64) and a.dtype == np.float32
        assert np.abs(a - b).max() < 0.1 and np.abs(a - b).mean() < 0.02, (gain, shift)
        assert np.abs(normalise(face, "imagenet") - normalise(other, "imagenet")).mean() > 0.15, (gain, shift)
    # and the input still tells two faces apart (this one and its mirror image)
    assert np.abs(normalise(face, "per_crop") - normalise(face[:, ::-1], "per_crop")).mean() > 0.3


def test_per_crop_flat_crop_stays_finite():
    x = normalise(np.full((8, 8, 3), 128, np.uint8), "per_crop")
    assert np.isfinite(x).all() and np.abs(x).max() == 0


def test_unknown_normalisation_is_a_clear_error():
    with pytest.raises(FauError, match="expected imagenet, tf_mean or per_crop"):
        normalise(np.zeros((4, 4, 3), np.uint8), "zscore")
