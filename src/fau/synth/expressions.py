"""What each AU does to the 68 landmarks, and smooth AU / head trajectories.

Displacements are per intensity unit, in units of the inter-ocular distance
(IOD, between the eye centres), along the face's own axes: `out` is away from
the face's vertical midline (negative: inward), `down` towards the chin
(negative: up), times GAIN. They add up linearly over AUs; intensity 5 (FACS
E, the maximum) moves e.g. the lip corners by 0.3 IOD up and 0.09 IOD out
(AU12) and the chin by 0.45 IOD (AU26). Each AU also changes the skin
(furrows, wrinkles, bulges: `fau.synth.appearance`).
"""

from __future__ import annotations

import numpy as np

# AU -> list of (landmark indices, out, down) per intensity unit (IOD units).
AU_MOTION: dict[int, list[tuple[tuple[int, ...], float, float]]] = {
    1: [((21, 22), 0.0, -0.045), ((20, 23), 0.0, -0.03), ((19, 24), 0.0, -0.012)],  # inner brows up
    2: [((17, 26), 0.0, -0.045), ((18, 25), 0.0, -0.04), ((19, 24), 0.0, -0.025)],  # outer brows up
    4: [((20, 21, 22, 23), -0.025, 0.03), ((17, 18, 19, 24, 25, 26), -0.01, 0.02)],  # brows down, together
    5: [((37, 38, 43, 44), 0.0, -0.02)],  # upper lids up
    6: [((40, 41, 46, 47), 0.0, -0.014), ((1, 2, 15, 14), 0.0, -0.02),
        ((31, 35), 0.0, -0.006)],  # cheeks and lower lids up (the eye corners stay)
    7: [((40, 41, 46, 47), 0.0, -0.01), ((37, 38, 43, 44), 0.0, 0.004)],  # lids tightened: the eye
    # narrows from below, the cheeks stay (AU6 lifts them)
    9: [((31, 32, 33, 34, 35), 0.0, -0.022), ((30,), 0.0, -0.012), ((21, 22), -0.01, 0.012),
        ((50, 51, 52), 0.0, -0.008)],  # nose wings up, brows pulled down
    10: [((50, 51, 52), 0.0, -0.032), ((49, 53), 0.0, -0.022), ((61, 62, 63), 0.0, -0.026),
         ((31, 35), 0.004, -0.012), ((32, 33, 34), 0.0, -0.006)],  # upper lip up, nose wings lifted
    12: [((48, 54), 0.012, -0.04), ((60, 64), 0.012, -0.038), ((49, 53, 55, 59), 0.01, -0.033),
         ((50, 52, 56, 58, 61, 63, 65, 67), 0.005, -0.024), ((51, 57, 62, 66), 0.0, -0.018)],  # corners up and out
    14: [((48, 54, 60, 64), -0.036, -0.004), ((49, 53, 55, 59), -0.016, 0.0), ((50, 51, 52), 0.0, 0.005),
         ((56, 57, 58), 0.0, -0.005)],  # corners in (tightened), lips thinner
    15: [((48, 54, 60, 64), 0.004, 0.032), ((55, 59), 0.0, 0.014), ((49, 53), 0.0, 0.008)],  # corners down
    17: [((56, 57, 58, 65, 66, 67), 0.0, -0.02), ((55, 59), 0.0, -0.012), ((7, 8, 9), 0.0, -0.03),
         ((6, 10), 0.0, -0.016), ((48, 54, 60, 64), 0.0, 0.006),
         ((61, 62, 63), 0.0, -0.019), ((49, 50, 51, 52, 53), 0.0, -0.016)],  # chin and lower lip up,
    # pushing the upper lip up with it (the lips stay together), mouth arched
    20: [((48, 54, 60, 64), 0.036, 0.006), ((49, 53, 55, 59), 0.016, 0.003)],  # corners out
    23: [((50, 51, 52), 0.0, 0.003), ((56, 57, 58), 0.0, -0.003), ((49, 53), 0.0, 0.002),
         ((55, 59), 0.0, -0.002), ((48, 54), -0.01, 0.0), ((60, 64), -0.008, 0.0)],  # lips tightened:
    # narrower and thinner, the inner lips and the corners' height unchanged
    24: [((50, 51, 52), 0.0, 0.004), ((56, 57, 58), 0.0, -0.004), ((49, 53), 0.0, 0.003),
         ((55, 59), 0.0, -0.003), ((48, 54, 60, 64), -0.004, 0.0)],  # lips pressed together: thinner
    25: [((65, 66, 67), 0.0, 0.03), ((56, 57, 58), 0.0, 0.02), ((55, 59), 0.0, 0.012),
         ((61, 62, 63), 0.0, -0.008)],  # lips apart
    26: [((8,), 0.0, 0.06), ((7, 9), 0.0, 0.055), ((6, 10), 0.0, 0.045), ((5, 11), 0.0, 0.03),
         ((4, 12), 0.0, 0.015), ((57,), 0.0, 0.055), ((56, 58, 65, 66, 67), 0.0, 0.05),
         ((55, 59), 0.0, 0.035), ((48, 54, 60, 64), 0.0, 0.012)],  # jaw down
}

GAIN = 1.5  # all displacements above, so that intensity 5 is a marked change (FACS E)

# Groups that move together (the AU's weight in the driver); every AU also has
# its own independent events, so the co-occurrence is strong but not perfect.
# A group moves only its AUs that the dataset labels (or OTHER_AUS, when on).
DRIVERS: dict[str, dict[int, float]] = {
    "smile": {6: 0.85, 12: 1.0, 25: 0.5, 10: 0.3},
    "open": {25: 1.0, 26: 0.9},
    "surprise": {1: 1.0, 2: 0.95, 5: 0.9, 26: 0.4},
    "frown": {4: 1.0, 9: 0.5, 15: 0.85, 17: 0.9, 7: 0.8, 24: 0.7, 23: 0.5},
    "disgust": {9: 1.0, 10: 0.9, 4: 0.4, 17: 0.3},
    "tight": {14: 1.0, 17: 0.6, 20: 0.9},
}

# The 68-point mirror permutation: index i of a mirrored face is MIRROR[i] of the original.
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65], dtype=np.int64)


def face_axes(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(centre, u, v, iod) of 68 points: u from the image-left eye to the
    image-right eye, v = u turned 90 degrees towards the chin."""
    le, re = pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)
    d = re - le
    iod = float(np.hypot(*d))
    u = d / iod
    v = np.array([-u[1], u[0]])
    centre = np.array([pts[27:36, 0].mean(), pts[:, 1].mean()])
    return centre, u, v, iod


def au_displacement(pts: np.ndarray, intensities: dict[int, float]) -> np.ndarray:
    """Displacement (68, 2) in pixels of the points `pts` (68, 2) for the given
    AU intensities (AUs not in AU_MOTION are ignored)."""
    centre, u, v, iod = face_axes(pts)
    side = np.sign((pts - centre) @ u)  # (68,) -1 left of the midline, +1 right
    side[side == 0] = 1.0
    disp = np.zeros_like(pts, dtype=np.float64)
    for au, value in intensities.items():
        if not value or au not in AU_MOTION:
            continue
        for idx, out, down in AU_MOTION[au]:
            i = np.array(idx)
            disp[i] += GAIN * value * iod * (out * side[i, None] * u[None, :] + down * v[None, :])
    return _keep_apart(pts, disp, v, iod)


# (upper, lower) landmark pairs that must stay at least the given IOD apart
# along the face's vertical axis: the lids (AU6 + AU7 narrow the eye) and each
# lip's outer and inner contour (AU14 + AU23 + AU24 thin the red). Only a
# combination of several strong AUs reaches these limits.
APART: tuple[tuple[tuple[tuple[int, int], ...], float], ...] = (
    (((37, 41), (38, 40), (43, 47), (44, 46)), 0.002),
    (((50, 61), (51, 62), (52, 63), (65, 56), (66, 57), (67, 58)), 0.002),
)


def _keep_apart(pts: np.ndarray, disp: np.ndarray, v: np.ndarray, iod: float) -> np.ndarray:
    """`disp` (68, 2) with each APART pair no closer than its limit: where the
    moved points come closer, both move back along `v`, half each."""
    moved = pts + disp
    for pairs, limit in APART:
        for up, lo in pairs:
            short = limit * iod - float((moved[lo] - moved[up]) @ v)  # px
            if short > 0:
                disp[up] -= 0.5 * short * v
                disp[lo] += 0.5 * short * v
    return disp


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise of length n, unit peak amplitude."""
    pad = int(3 * sigma) + 1
    x = rng.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma) ** 2)
    y = np.convolve(x, k / k.sum(), mode="same")[pad:pad + n]
    m = np.abs(y).max()
    return y / m if m > 0 else y


def _bump(n: int, centre: float, width: float, peak: float) -> np.ndarray:
    """A raised-cosine bump over n frames."""
    x = np.clip((np.arange(n, dtype=np.float64) - centre) / (width / 2), -1, 1)
    return peak * 0.5 * (1 + np.cos(np.pi * x))


REST = 0.15  # share of a video's frames at each end with a neutral face (videos start and end at rest)

# AUs that are never animated on their own when the dataset does not label
# them, but move with labelled AUs: lips part (AU25) in a broad smile and with
# a strong upper-lip raise.
COUPLED: dict[int, dict[int, float]] = {25: {12: 0.5, 10: 0.6}}

# AUs that may move the face although the dataset does not label them
# (`synth.other_aus`), as real faces do: brows raised or lowered, lids raised
# or tightened, lips tightened or pressed. None of them parts the lips or
# moves the mouth corners up or down, so a frame whose labels are all 0 still
# has closed lips at the neutral corner height; a model must learn its AUs
# apart from them (a lowered brow, narrowed eyes and pressed lips are no smile).
OTHER_AUS: tuple[int, ...] = (1, 2, 4, 5, 7, 23, 24)


def au_trajectories(rng: np.random.Generator, aus: tuple[int, ...], n: int, offset: int = 0,
                    labelled: tuple[int, ...] | None = None, others: tuple[int, ...] = ()) -> np.ndarray:
    """Integer AU intensities 0..5, shape (n, len(aus)), smooth over time.

    Only `labelled` AUs (default: all of `aus`) and the unlabelled `others`
    get events. A video starts and ends at rest (the first and last REST of
    its frames are all 0, from 10 frames on); in between it is a chain of
    expression events (one DRIVERS group each, restricted to the labelled
    AUs and `others`, peak 3..5.5, at most two overlapping); the groups with
    a labelled AU rotate with `offset` (the video's number) so a dataset
    visits all of them. Each labelled AU and each of `others` also gets its
    own occasional event (probability 0.35, peak 2..5.5), so co-occurrence
    is strong but not perfect, and small smooth noise. Any other AU is 0,
    except a COUPLED one, which follows the labelled AUs it is tied to (and
    is 0 wherever they all are)."""
    labelled = tuple(aus) if labelled is None else tuple(a for a in labelled if a in aus)
    others = tuple(a for a in others if a in aus and a not in labelled)
    names = [name for name, group in DRIVERS.items() if set(group) & set(labelled)]
    rest = int(round(REST * n)) if n >= 10 else 0  # neutral frames at each end
    span = n - 2 * rest
    window = np.zeros(n)
    window[rest:n - rest] = 1.0
    width = 0.45 * span if span < 40 else float(rng.uniform(14, 30))
    count = max(1, int(np.ceil(span / (0.6 * width))))
    value = {au: np.zeros(n) for au in labelled + others}
    for k in range(count):
        centre = rest + (k + 0.5) * span / count + rng.uniform(-0.1, 0.1) * width
        bump = _bump(n, centre, width * rng.uniform(0.8, 1.2), rng.uniform(3.0, 5.5))
        if not names:
            continue
        for au, w in DRIVERS[names[(offset + k) % len(names)]].items():
            if au in value:
                value[au] = np.maximum(value[au], w * bump)
    out = np.zeros((n, len(aus)))
    for j, au in enumerate(aus):
        if au not in value:
            continue
        v = value[au]
        if rng.uniform() < 0.35:
            v = np.maximum(v, _bump(n, rng.uniform(rest, n - rest - 1), width * rng.uniform(0.6, 1.0),
                                    rng.uniform(2.0, 5.5)))
        out[:, j] = (v + 0.3 * _smooth_noise(rng, n, 2.0)) * window
    out = np.clip(np.rint(out), 0, 5)
    col = {au: j for j, au in enumerate(aus)}
    active = out[:, [col[a] for a in labelled]].max(axis=1) > 0 if labelled else np.zeros(n, bool)  # (n,)
    for au, ties in COUPLED.items():
        if au in col and au not in labelled:
            v = np.max([w * out[:, col[a]] for a, w in ties.items() if a in labelled] or [np.zeros(n)], axis=0)
            out[:, col[au]] = np.where(active, np.clip(np.rint(v), 0, 5), 0)
    return out.astype(np.int64)


def head_motion(rng: np.random.Generator, n: int, iod: float) -> np.ndarray:
    """Smooth small head motion: per frame (angle in degrees, scale, dx, dy in px), (n, 4)."""
    sigma = max(2.0, n / 8)
    return np.stack([
        2.5 * _smooth_noise(rng, n, sigma),
        1.0 + 0.025 * _smooth_noise(rng, n, sigma),
        0.08 * iod * _smooth_noise(rng, n, sigma),
        0.05 * iod * _smooth_noise(rng, n, sigma),
    ], axis=1)
