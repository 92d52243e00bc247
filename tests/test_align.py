"""Face alignment: rigid landmarks onto the shipped neutral face, crops of any size."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from fau import align
from fau.config import CropsConfig
from fau.synth.expressions import au_displacement

from conftest import REPO


def test_shipped_neutral_face_is_what_the_script_computes():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "neutral_template.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _face() -> np.ndarray:
    """The neutral face placed somewhere in a frame: rotated, scaled, moved."""
    m = cv2.getRotationMatrix2D((128, 128), 11.0, 2.3)
    m[:, 2] += (310, 140)
    return align.transform(align.read_template(), m)


def test_rigid_alignment_ignores_expressions_eyes_mouth_does_not():
    """A broad smile, raised cheeks, upper lip and chin (landmarks moved by
    AU6, AU10, AU12, AU17 at intensity 5) leave the rigid crop where it was;
    the eyes + mouth crop follows the mouth."""
    face = _face()
    smile = face + au_displacement(face, {6: 5, 10: 5, 12: 5, 17: 5})
    for crops, moves in ((CropsConfig(alignment="rigid"), False), (CropsConfig(alignment="eyes_mouth"), True)):
        a, b = align.frame_to_crop(face, crops), align.frame_to_crop(smile, crops)
        shift = np.abs(align.transform(face[list(align.RIGID)], a) - align.transform(face[list(align.RIGID)], b)).max()
        assert (shift > 1.0) == moves, (crops.alignment, shift)
    # The neutral face itself lands on the template (to rounding).
    crop_pts = align.transform(face, align.frame_to_crop(face, CropsConfig()))
    assert np.abs(crop_pts - align.read_template()).max() < 1e-6


def test_crop_size_scales_the_template():
    """crops.size 128 is the 256 crop at half scale (the templates are given
    for 256): same face content, points at half the coordinates."""
    face = _face()
    frame = np.zeros((900, 1200, 3), np.uint8)
    for x, y in face:
        cv2.circle(frame, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    for method in ("rigid", "eyes_mouth"):
        big = align.frame_to_crop(face, CropsConfig(size=256, alignment=method))
        small = align.frame_to_crop(face, CropsConfig(size=128, alignment=method))
        assert np.allclose(align.transform(face, small), align.transform(face, big) / 2, atol=1e-6)
        c256 = align.crop(frame, big, 256)
        c128 = align.crop(frame, small, 128)
        ref = cv2.resize(c256, (128, 128), interpolation=cv2.INTER_AREA)
        assert np.abs(c128.astype(int) - ref.astype(int)).mean() < 6  # the same picture, half size
        inside = align.transform(face, small)
        assert ((inside >= 0) & (inside < 128)).all()
