import numpy as np
import pytest

from fau.heatmaps import au_intensities, decode, encode


def test_target_is_a_gaussian_scaled_by_255_times_intensity_at_the_rounded_centre():
    maps = encode(np.array([[21.0, 10.0], [30.0, 30.0]]), np.array([2.0, 0.0]), output_size=16, stride=4, sigma=2)
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32
    # floor(21/4 + 0.5) = 5, floor(10/4 + 0.5) = 3
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (3, 5)
    assert maps[0, 3, 5] == pytest.approx(510.0)
    assert maps[0, 3, 7] == pytest.approx(510.0 * np.exp(-4 / 8), rel=1e-5)
    assert not maps[1].any()  # intensity 0: all-zero map


def test_encode_then_decode_recovers_points_and_intensities():
    rng = np.random.default_rng(0)
    stride, size = 4, 32
    points = rng.uniform(8, 120, size=(3, 10, 2))  # (B, P, 2) input pixels, away from the border
    inten = rng.uniform(0.1, 5.0, size=(3, 5))  # (B, A)
    per_point = np.repeat(inten, 2, axis=1)  # (B, P)
    maps = np.stack([encode(points[b], per_point[b], size, stride, 2.0) for b in range(3)])
    got_points, maxvals = decode(maps, stride)
    assert np.abs(got_points - points).max() <= stride  # <= 1 output pixel
    assert np.abs(au_intensities(maxvals) - inten).max() <= 0.01


def test_decode_shifts_a_quarter_pixel_towards_the_larger_neighbour():
    hm = np.zeros((1, 1, 8, 8))
    hm[0, 0, 4, 3] = 10
    hm[0, 0, 4, 4] = 6  # right neighbour larger than the left
    hm[0, 0, 3, 3] = 2  # upper neighbour larger than the lower
    points, maxvals = decode(hm, stride=4)
    assert points[0, 0] == pytest.approx([(3 + 0.25) * 4, (4 - 0.25) * 4])
    assert maxvals[0, 0] == 10


def test_au_intensity_is_the_mean_of_its_two_points_clipped_to_0_5():
    maxvals = np.array([[255 * 2, 255 * 3, 255 * 7, 255 * 6, -100, 0]])
    assert au_intensities(maxvals).tolist() == [[2.5, 5.0, 0.0]]
