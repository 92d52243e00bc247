"""Piecewise-affine image warp over a Delaunay triangulation (OpenCV only).

The triangles come from `cv2.Subdiv2D` on the source points; each one maps
its destination triangle back to its source triangle with its own affine.
The per-pixel inverse map is built inside the bounding box of the moving
region only: every destination triangle is rasterised (`cv2.fillConvexPoly`)
with its index into a label image, each pixel takes its triangle's affine
(pixels outside all triangles keep the identity), then one `cv2.remap`.
About 10 ms for a face region of a 1024 x 768 frame.
"""

from __future__ import annotations

import cv2
import numpy as np


def delaunay(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Triangles (T, 3) of indices into `points` (N, 2) via cv2.Subdiv2D."""
    pts = np.asarray(points, dtype=np.float64)
    lo = np.floor(pts.min(axis=0)) - 2
    hi = np.ceil(pts.max(axis=0)) + 2
    rect = (int(min(lo[0], 0)), int(min(lo[1], 0)),
            int(max(hi[0], width) - min(lo[0], 0)) + 1, int(max(hi[1], height) - min(lo[1], 0)) + 1)
    subdiv = cv2.Subdiv2D(rect)
    for p in pts:
        subdiv.insert((float(p[0]), float(p[1])))
    tris = subdiv.getTriangleList().reshape(-1, 3, 2)  # (T', 3, 2) vertex coordinates
    out = []
    for tri in tris:
        # Map vertices back to point indices (Subdiv2D returns coordinates); drop
        # triangles touching its virtual outer vertices.
        d = np.linalg.norm(pts[None, :, :] - tri[:, None, :], axis=2)  # (3, N)
        idx = d.argmin(axis=1)
        if np.all(d[np.arange(3), idx] < 1e-3) and len(set(idx.tolist())) == 3:
            out.append(idx)
    return np.array(out, dtype=np.int32).reshape(-1, 3)


def _inverse_affines(src: np.ndarray, dst: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Per triangle the 2x3 affine taking destination to source coordinates: (T, 2, 3)."""
    out = np.zeros((len(tris), 2, 3), dtype=np.float64)
    for t, (a, b, c) in enumerate(tris):
        out[t] = cv2.getAffineTransform(dst[[a, b, c]].astype(np.float32), src[[a, b, c]].astype(np.float32))
    return out


def warp_piecewise(image: np.ndarray, src: np.ndarray, dst: np.ndarray, tris: np.ndarray,
                   region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Warp `image` so that points `src` (N, 2) move to `dst` (N, 2).

    `tris` (T, 3) triangulates the points; `region` (x0, y0, x1, y1) bounds
    the destination pixels that may change (default: the points' bounding
    box). Pixels outside every triangle keep their value."""
    h, w = image.shape[:2]
    if region is None:
        both = np.vstack([src, dst])
        region = (int(np.floor(both[:, 0].min())), int(np.floor(both[:, 1].min())),
                  int(np.ceil(both[:, 0].max())) + 1, int(np.ceil(both[:, 1].max())) + 1)
    x0, y0 = max(0, region[0]), max(0, region[1])
    x1, y1 = min(w, region[2]), min(h, region[3])
    if x1 <= x0 or y1 <= y0:
        return image.copy()
    rw, rh = x1 - x0, y1 - y0
    affines = np.concatenate([np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), _inverse_affines(src, dst, tris)])  # (T+1, 2, 3)
    labels = np.zeros((rh, rw), dtype=np.int32)  # 0: identity, t + 1: triangle t
    shifted = (dst - np.array([x0, y0])).astype(np.float64)
    for t, tri in enumerate(tris):
        poly = np.round(shifted[tri] * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillConvexPoly(labels, poly, t + 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)  # (rh, rw) destination pixel grid
    a = affines.astype(np.float32)[labels]  # (rh, rw, 2, 3)
    map_x = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2]
    map_y = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2]
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101)
    return out


def ring_points(points: np.ndarray, scale_x: float, scale_y: float, n: int = 20,
                shift_y: float = 0.0) -> np.ndarray:
    """`n` points on an ellipse around `points` (N, 2): centre of the points'
    box (shifted down by `shift_y` of its height), radii `scale_x`/`scale_y` x
    the box's half-width/half-height. Fixed anchors that keep the warp local."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    c = (lo + hi) / 2 + np.array([0.0, shift_y * (hi[1] - lo[1])])
    r = (hi - lo) / 2 * np.array([scale_x, scale_y])
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([c[0] + r[0] * np.cos(ang), c[1] + r[1] * np.sin(ang)], axis=1)  # (n, 2)
