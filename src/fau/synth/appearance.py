"""What each AU does to the skin besides moving landmarks: the furrows,
wrinkles and bulges FACS coders read intensity from (the nasolabial furrow
deepening with AU12, crow's feet with AU6, the chin boss wrinkling with AU17,
...). Each is soft shading anchored to the landmarks of the expressive face,
darker (or brighter, for a bulge) in proportion to the AU's intensity, the
same for everyone up to a per-person depth factor (`Skin`).

Geometry is in units of the inter-ocular distance (IOD) along the face's own
axes: `out` away from the vertical midline, `down` towards the chin.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .expressions import face_axes

# AU -> strokes. A stroke: (kind, side, anchors, darkness per intensity
# unit, width (IOD), blur (IOD)). kind: "line" (a furrow or wrinkle along the
# anchors) or "blob" (an ellipse around their mean, width x 0.6 width: a
# bulge, or the chin boss); side: "both" (drawn on both halves of the face,
# mirrored) or "mid" (on the midline); anchors: points (landmark of the
# image-left half, out, down). Negative darkness brightens (a bulge).
Stroke = tuple[str, str, tuple[tuple[int, float, float], ...], float, float, float]
SHADE = 1.5  # all darkness values below
# The landmark on the image-right half that mirrors an image-left one.
MIRRORED = {**{i: 16 - i for i in range(17)}, **{17 + i: 26 - i for i in range(10)},
            31: 35, 32: 34, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52,
            59: 55, 58: 56, 60: 64, 61: 63, 67: 65}

AU_STROKES: dict[int, list[Stroke]] = {
    1: [("line", "mid", ((21, 0.05, -0.42), (21, -0.1, -0.47), (22, -0.1, -0.47), (22, 0.05, -0.42)), 0.045, 0.03, 0.02),
        ("line", "mid", ((21, 0.1, -0.3), (21, -0.1, -0.34), (22, -0.1, -0.34), (22, 0.1, -0.3)), 0.045, 0.03, 0.02)],
    2: [("line", "both", ((19, 0.0, -0.3), (18, 0.05, -0.28), (17, 0.1, -0.22)), 0.05, 0.03, 0.02),
        ("line", "both", ((19, 0.0, -0.42), (18, 0.05, -0.4), (17, 0.1, -0.34)), 0.04, 0.03, 0.02)],
    4: [("line", "both", ((21, -0.06, -0.05), (21, -0.07, -0.2)), 0.07, 0.025, 0.015),
        ("line", "both", ((21, 0.02, -0.02), (20, 0.0, -0.1)), 0.04, 0.02, 0.015)],
    6: [("line", "both", ((36, 0.07, -0.04), (36, 0.26, -0.1)), 0.05, 0.015, 0.012),  # crow's feet
        ("line", "both", ((36, 0.08, 0.0), (36, 0.28, 0.01)), 0.05, 0.015, 0.012),
        ("line", "both", ((36, 0.07, 0.04), (36, 0.25, 0.11)), 0.05, 0.015, 0.012),
        ("line", "both", ((36, 0.02, 0.12), (41, 0.0, 0.14), (40, 0.0, 0.14), (39, 0.0, 0.12)), 0.045, 0.025, 0.025),
        ("blob", "both", ((41, 0.05, 0.35),), -0.03, 0.22, 0.08)],  # cheek raised
    9: [("line", "mid", ((39, 0.12, 0.05), (28, 0.0, 0.0), (42, 0.12, 0.05)), 0.06, 0.02, 0.015),
        ("line", "mid", ((39, 0.16, 0.12), (29, 0.0, -0.02), (42, 0.16, 0.12)), 0.05, 0.02, 0.015),
        ("line", "both", ((31, 0.04, -0.12), (31, 0.1, -0.02)), 0.05, 0.025, 0.02)],
    10: [("line", "both", ((31, 0.05, -0.05), (31, 0.1, 0.06), (48, 0.1, -0.08)), 0.055, 0.03, 0.025),
         ("line", "both", ((31, 0.02, -0.1), (31, 0.08, -0.1)), 0.04, 0.02, 0.02)],
    12: [("line", "both", ((31, 0.07, 0.0), (31, 0.15, 0.15), (48, 0.12, 0.02), (48, 0.1, 0.16)), 0.06, 0.03, 0.03),
         ("blob", "both", ((48, 0.25, -0.24),), -0.035, 0.2, 0.07)],  # cheek bulge above the furrow
    14: [("line", "both", ((48, 0.07, -0.1), (48, 0.12, 0.0), (48, 0.07, 0.1)), 0.13, 0.05, 0.035),  # dimple
         ("blob", "both", ((48, 0.02, 0.0),), -0.04, 0.07, 0.03)],  # the corner bulging in front of it
    15: [("line", "both", ((48, 0.02, 0.06), (48, 0.06, 0.2), (48, 0.08, 0.3)), 0.055, 0.025, 0.025)],
    17: [("line", "mid", ((59, -0.05, 0.1), (57, 0.0, 0.13), (55, -0.05, 0.1)), 0.08, 0.04, 0.03),
         ("blob", "mid", ((57, 0.0, 0.22),), -0.03, 0.1, 0.04),  # chin boss pushed up
         ("blob", "mid", ((57, 0.0, 0.32),), 0.04, 0.12, 0.05)],  # and wrinkled below
    20: [("line", "both", ((48, 0.14, -0.08), (48, 0.16, 0.04), (48, 0.14, 0.14)), 0.045, 0.025, 0.02)],
}


@dataclass(frozen=True)
class Skin:
    """Per-person appearance: how deep their furrows get (0.8-1.2) and a small
    offset of each stroke (IOD), fixed for the person."""

    depth: float
    jitter: np.ndarray  # (n strokes, 2) out / down offsets

    @staticmethod
    def random(rng: np.random.Generator) -> "Skin":
        n = sum(len(v) for v in AU_STROKES.values())
        return Skin(float(rng.uniform(0.8, 1.2)), rng.uniform(-0.015, 0.015, size=(n, 2)))


def strokes(pts: np.ndarray, intensities: dict[int, float], skin: Skin):
    """Yield (kind, polyline (n, 2) px, darkness, width px, blur px) for the active AUs."""
    centre, u, v, iod = face_axes(pts)
    k = 0
    for au in sorted(AU_STROKES):
        for kind, side, anchors, dark, width, blur in AU_STROKES[au]:
            jit = skin.jitter[k]
            k += 1
            value = float(intensities.get(au, 0) or 0)
            if value <= 0:
                continue
            for right in ((False, True) if side == "both" else (False,)):
                line = []
                for idx, out, down in anchors:
                    i = MIRRORED.get(idx, idx) if right else idx
                    sgn = 1.0 if right else -1.0  # "out": -u on the image-left half
                    if side == "mid":
                        sgn = 1.0 if (pts[i] - centre) @ u >= 0 else -1.0
                    line.append(pts[i] + iod * ((out + jit[0]) * sgn * u + (down + jit[1]) * v))
                yield (kind, np.array(line), SHADE * dark * value * skin.depth, max(1.0, width * iod),
                       max(0.5, blur * iod))


def apply(img: np.ndarray, pts: np.ndarray, intensities: dict[int, float], skin: Skin) -> np.ndarray:
    """`img` (H, W, 3) uint8 with the AUs' skin shading for landmarks `pts`
    (68, 2): each stroke drawn and blurred in its own small box, the pixels
    multiplied by (1 - shade); only the strokes' bounding box is touched."""
    h, w = img.shape[:2]
    boxes = []
    for kind, line, dark, width, blur in strokes(pts, intensities, skin):
        pad = width + 3 * blur + 2
        x0, y0 = np.floor(line.min(axis=0) - pad).astype(int)
        x1, y1 = np.ceil(line.max(axis=0) + pad).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 > x0 and y1 > y0:
            boxes.append((kind, line, dark, width, blur, x0, y0, x1, y1))
    if not boxes:
        return img
    bx0, by0 = min(b[5] for b in boxes), min(b[6] for b in boxes)
    bx1, by1 = max(b[7] for b in boxes), max(b[8] for b in boxes)
    factor = np.ones((by1 - by0, bx1 - bx0), np.float32)  # (h', w') multiplicative shading
    for kind, line, dark, width, blur, x0, y0, x1, y1 in boxes:
        layer = np.zeros((y1 - y0, x1 - x0), np.float32)
        local = (line - np.array([x0, y0])) * 16
        if kind == "blob":
            c = local.mean(axis=0)
            cv2.ellipse(layer, (int(c[0]), int(c[1])), (int(width * 16), int(width * 0.6 * 16)), 0, 0, 360,
                        1.0, -1, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(layer, [np.round(local).astype(np.int32)], False, 1.0, max(1, int(round(width))),
                          cv2.LINE_AA, shift=4)
        shade = float(dark) * cv2.GaussianBlur(layer, (0, 0), sigmaX=float(blur))
        factor[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] *= np.clip(1.0 - shade, 0.3, 1.5)
    out = img.copy()
    region = out[by0:by1, bx0:bx1]
    out[by0:by1, bx0:bx1] = np.clip(region * factor[..., None], 0, 255).astype(np.uint8)
    return out
