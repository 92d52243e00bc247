"""Synthetic BP4D / DISFA: distinct synthetic people (`fau.synth.faces`)
animated by AU-driven landmark warps.

`generate(ds, synth, seed)` writes a dataset at `ds.root` in the official
layout of `ds.kind` (docs/formats.md), with the default path patterns of
`fau.config.DEFAULT_PATTERNS` (`ds.patterns` overrides apply):

- BP4D: `<root>/<subject>/<task>/<frame>.jpg` (frame numbers start at a
  random offset, not zero-padded), optionally `<root>/2D+3D/<subject>.zip`
  (`synth.zip`), labels `AUCoding/AU_INT/AU06/F001_T1_AU06.csv` (no header,
  `frame,intensity`) for a coded window of each task, with some 9 codes.
- DISFA: `<root>/Videos_LeftCamera/LeftVideoSN001_comp.avi` (MJPG or mp4v)
  and `ActionUnit_Labels/SN001/SN001_au1.txt` (`frame,intensity`, 1-based).

Every subject starts from a neutral face (closed relaxed lips, brows and lids
at rest), so an intensity means the same face change for everyone. The
dataset's labelled AUs move the face (plus AU25, lips apart, tied to a broad
smile or a strong upper-lip raise where it is not labelled) and, with
`synth.other_aus`, the unlabelled AUs of `expressions.OTHER_AUS` (brows,
lids, lips tightened or pressed, as a real face moves more than its coded
AUs): a frame whose labels are all 0 has closed lips at the neutral corner
height (and without `other_aus` shows the neutral face). Ground truth for
tests lives in the hidden `<root>/.synth/`: `<video>_landmarks.npz`
(`frames`, `points` (T, 68, 2) intended landmarks, `expression` (T, 68, 2)
before head motion, `neutral` (68, 2), `head` (T, 2, 3) head-motion
similarity, `aus`, `intensities` (T, n)) and `manifest.json` (written last:
videos, per subject its source photos, their people and weights, and the
unlabelled AUs that move). Same seed and config -> identical files.
"""
from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import CubicSpline
from tqdm import tqdm

from .. import atomic
from ..config import DatasetConfig, SynthConfig, to_plain
from ..errors import FauError
from . import appearance
from .expressions import AU_MOTION, OTHER_AUS, au_displacement, au_trajectories, face_axes, head_motion
from .faces import ORDER, PHOTOS, Recipe, Subject, inner_gap, make_subject, recipes
from .warp import delaunay, ring_points, warp_piecewise

DISFA_IDS = tuple(f"SN{i:03d}" for i in range(1, 33) if i not in (14, 15, 19, 20, 22))
SIDECAR = ".synth"
HALO_DIST, HALO_FOLLOW = 0.15, 0.9  # halo distance (IOD) and share of the lip / jaw motion it follows
HALO_JAW = np.arange(5, 12)  # lower jaw contour points that get a halo
FACE_FRACTION = {"bp4d": 0.45, "disfa": 0.42}  # face width (jaw span) / min(frame w, h)
OPENING_AUS = (25, 26)  # the AUs that part the lips (lips apart, jaw drop)
MOUTH_DARK = (35, 25, 55)  # BGR: the inside of the mouth
TEETH_UPPER, TEETH_LOWER = (190, 205, 215), (150, 165, 175)  # BGR: off-white; the lower teeth in shadow


def subject_ids(kind: str, n: int) -> list[str]:
    """IDs like the real ones. BP4D: F001, M001, ... numbered per sex, the
    sex of person i's dominant photo (`faces.recipes`); DISFA: SN001, SN002,
    ... (no SN014, ...)."""
    if kind == "bp4d":
        count = {"F": 0, "M": 0}
        out = []
        for i in range(n):
            sex = PHOTOS[ORDER[i % len(ORDER)]].sex
            count[sex] += 1
            out.append(f"{sex}{count[sex]:03d}")
        return out
    if kind == "disfa":
        if n > len(DISFA_IDS):
            raise FauError(f"config key 'synth.subjects' is {n}; DISFA has only {len(DISFA_IDS)} subject IDs")
        return list(DISFA_IDS[:n])
    raise FauError(f"config key 'dataset.kind' is {kind!r}; expected bp4d or disfa")


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng([int(seed)] + [zlib.crc32(str(k).encode()) for k in keys])


class Renderer:
    """Renders frames of one subject: AU warp (piecewise affine inside a ring
    around the face), mouth interior, the AUs' furrows and wrinkles
    (`appearance`), head motion (similarity), sensor noise."""

    def __init__(self, subject: Subject):
        self.subject = subject
        h, w = subject.frame.shape[:2]
        pts = subject.points
        self.ring = ring_points(pts, 1.4, 1.65, n=24, shift_y=0.05)
        self.iod = float(np.hypot(*(pts[42:48].mean(0) - pts[36:42].mean(0))))
        # Halo: a point outside each outer-lip and lower-jaw landmark that follows it
        # most of the way, so the skin around moves with it (not only the contour line).
        mc = pts[48:60].mean(axis=0)
        out = pts[48:60] - mc
        lips = pts[48:60] + HALO_DIST * self.iod * out / np.linalg.norm(out, axis=1, keepdims=True)
        out = pts[HALO_JAW] - pts.mean(axis=0)
        jaw = pts[HALO_JAW] + HALO_DIST * self.iod * out / np.linalg.norm(out, axis=1, keepdims=True)
        self.halo = np.vstack([lips, jaw])
        self.halo_parent = np.r_[np.arange(48, 60), HALO_JAW]
        self.src = np.vstack([pts, self.halo, self.ring])
        self.tris = delaunay(self.src, w, h)
        lo = np.floor(self.ring.min(axis=0)).astype(int)
        hi = np.ceil(self.ring.max(axis=0)).astype(int) + 1
        self.region = (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
        self.centre = pts.mean(axis=0)
        self.neutral_gap = inner_gap(pts)  # IOD, signed (negative: the lips pass through each other)
        # IOD the lips part per intensity unit of AU25 / AU26 (displacements are linear in intensity)
        self.parting = {au: inner_gap(pts + au_displacement(pts, {au: 1.0})) - self.neutral_gap
                        for au in OPENING_AUS}

    def head_matrix(self, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
        m = cv2.getRotationMatrix2D((float(self.centre[0]), float(self.centre[1])), float(angle), float(scale))
        m[:, 2] += (dx, dy)
        return m  # (2, 3)

    def opening(self, intensities: dict[int, float], expr: np.ndarray) -> float:
        """How far the lips are apart (px) beyond the neutral face: the
        inner-lip gap that AU25 / AU26 add, no more than the lips' actual
        gap (`faces.inner_gap`). Other AUs never open the mouth: AU17
        pushes the lower lip up against the upper one, AU10 lifts the upper
        lip with the lips still together (where AU10 is strong the
        generator couples AU25 to it)."""
        added = sum(self.parting[au] * float(intensities.get(au, 0) or 0) for au in OPENING_AUS)
        return max(0.0, min(added, inner_gap(expr) - self.neutral_gap)) * self.iod

    def mouth_interior(self, img: np.ndarray, expr: np.ndarray, opening: float) -> np.ndarray:
        """Where the lips part (`opening` px, from `self.opening`), the inside
        of the mouth inside the inner-lip contour (a smooth curve through the
        eight inner-lip points, `_lip_curves`): the upper teeth below the upper
        lip (down to 0.8 of the opening, at most 0.14 IOD), the lower teeth
        above the lower lip (0.3 of the opening, at most 0.06 IOD), both
        narrowing and shaded towards the corners, and the dark mouth between
        them once the jaw drops; faded in over the first 0.08 IOD."""
        alpha = float(np.clip(opening / (0.08 * self.iod), 0, 1)) * 0.9
        if alpha <= 0:
            return img
        upper, lower = _lip_curves(expr)  # (N, 2) each, image-left corner to image-right corner
        contour = np.vstack([upper, lower[::-1]])
        lo = np.floor(contour.min(axis=0)).astype(int) - 2
        hi = np.ceil(contour.max(axis=0)).astype(int) + 3
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(0, lo[0]), max(0, lo[1]), min(w, hi[0]), min(h, hi[1])
        if x1 <= x0 or y1 <= y0:
            return img
        off = np.array([x0, y0], np.float64)
        region = img[y0:y1, x0:x1]
        inside = _mask(region.shape[:2], contour - off)
        paint = np.empty(region.shape, np.float32)
        paint[...] = MOUTH_DARK
        _, u, v, _ = face_axes(expr)
        s = np.linspace(0.0, 1.0, len(upper))
        taper = np.sin(np.pi * (s - 0.08) / 0.84)  # (N,) teeth narrow into the corners, none at them
        keep = taper > 0
        taper = taper[keep, None] ** 0.35  # (K, 1)
        for curve, depth, sign, colour in ((lower, min(0.3 * opening, 0.06 * self.iod), -1.0, TEETH_LOWER),
                                           (upper, min(0.8 * opening, 0.14 * self.iod), 1.0, TEETH_UPPER)):
            edge = curve[keep] + sign * depth * taper * v  # (K, 2) the teeth's biting edge
            teeth = _mask(region.shape[:2], np.vstack([curve[keep], edge[::-1]]) - off)
            paint += teeth[..., None] * (np.asarray(colour, np.float32) - paint)
        # the back teeth in shadow: darker towards the corners (buccal corridor)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        centre = contour.mean(axis=0)
        half = max(1.0, float(np.abs((contour - centre) @ u).max()))  # px, centre to the further corner
        across = np.abs((xs - centre[0]) * u[0] + (ys - centre[1]) * u[1]) / half  # (h, w) 0 centre .. 1 corner
        paint *= (1.0 - 0.45 * np.clip(across, 0, 1) ** 2)[..., None]
        a = (alpha * inside)[..., None]
        out = img.copy()
        out[y0:y1, x0:x1] = np.clip(a * paint + (1 - a) * region, 0, 255).astype(np.uint8)
        return out

    def render(self, intensities: dict[int, float], head: np.ndarray, noise_seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """-> (BGR frame (H, W, 3), intended landmarks before head motion (68, 2))."""
        pts = self.subject.points
        disp = au_displacement(pts, intensities)
        expr = pts + disp
        dst = np.vstack([expr, self.halo + HALO_FOLLOW * disp[self.halo_parent], self.ring])
        img = warp_piecewise(self.subject.frame, self.src, dst, self.tris, self.region)
        img = self.mouth_interior(img, expr, self.opening(intensities, expr))
        img = appearance.apply(img, expr, intensities, self.subject.skin)
        h, w = img.shape[:2]
        img = cv2.warpAffine(img, head, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        noise = np.empty(img.shape, np.int16)
        cv2.setRNGSeed(int(noise_seed) & 0x7FFFFFFF)
        cv2.randn(noise, 0, 2.0)
        img = cv2.add(img, noise, dtype=cv2.CV_8U)
        return img, expr


def _mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """(h, w) float32 coverage 0..1 of a polygon (px), antialiased (OpenCV
    antialiases only 8-bit images)."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _lip_curves(expr: np.ndarray, n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The inner-lip contour of 68 points as two smooth curves (n, 2) from the
    image-left inner corner (60) to the image-right one (64): the upper lip
    through 61, 62, 63 and the lower through 67, 66, 65 (natural cubic
    splines over the points' order; the polygon through the points alone has
    corners where the lips are curved)."""
    t = np.arange(5.0)
    s = np.linspace(0.0, 4.0, n)
    curves = []
    for idx in ((60, 61, 62, 63, 64), (60, 67, 66, 65, 64)):
        spline = CubicSpline(t, expr[list(idx)], bc_type="natural", axis=0)
        curves.append(spline(s))
    return curves[0], curves[1]


def _encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FauError("cv2.imencode failed to encode a synthetic frame")
    return buf.tobytes()


def _moving(ds: DatasetConfig, synth: SynthConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(labelled AUs, unlabelled AUs that move too): OTHER_AUS not labelled, when `synth.other_aus`."""
    others = tuple(a for a in OTHER_AUS if a not in ds.aus) if synth.other_aus else ()
    return tuple(ds.aus), others


def _sequence(renderer: Renderer, rng: np.random.Generator, n: int, seed: int, video: str,
              desc: str, number: int, moving: tuple[tuple[int, ...], tuple[int, ...]]):
    """Yield (i, frame, points, expression, head matrix, intensities row) for
    one video; only the `moving` AUs (labelled, others) and those COUPLED to
    the labelled ones move."""
    motion_aus = tuple(sorted(AU_MOTION))
    labelled, others = moving
    traj = au_trajectories(rng, motion_aus, n, offset=3 * number, labelled=labelled, others=others)  # (n, A)
    head = head_motion(rng, n, renderer.iod)  # (n, 4)
    for i in tqdm(range(n), desc=desc, unit="frame", leave=False):
        m = renderer.head_matrix(*head[i])
        img, expr = renderer.render(dict(zip(motion_aus, traj[i].tolist())), m,
                                    zlib.crc32(f"{seed}/{video}/{i}".encode()))
        pts = expr @ m[:, :2].T + m[:, 2]
        yield i, img, pts, expr, m, traj[i]


def _save_sidecar(root: Path, video: str, frames: list[int], rows: list, neutral: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(
        buf, frames=np.array(frames, np.int64), points=np.array([r[0] for r in rows]),
        expression=np.array([r[1] for r in rows]), head=np.array([r[2] for r in rows]),
        intensities=np.array([r[3] for r in rows]), aus=np.array(sorted(AU_MOTION)), neutral=neutral)
    atomic.write_bytes(root / SIDECAR / f"{video}_landmarks.npz", buf.getvalue())


def _label_text(frames: list[int], values: list[int]) -> bytes:
    return "".join(f"{f},{v}\n" for f, v in zip(frames, values)).encode()


def _check_aus(ds: DatasetConfig) -> None:
    bad = [a for a in ds.aus if a not in AU_MOTION]
    if bad:
        raise FauError(f"config key 'dataset.aus' holds AU{bad[0]}, which the synthetic generator cannot "
                       f"animate (known: {', '.join(map(str, sorted(AU_MOTION)))})")


def _generate_bp4d(ds: DatasetConfig, synth: SynthConfig, seed: int, root: Path,
                   people: list[Recipe]) -> list[str]:
    videos = []
    motion_aus = sorted(AU_MOTION)
    col = {au: motion_aus.index(au) for au in ds.aus}
    for si, subject_id in enumerate(tqdm(subject_ids("bp4d", synth.subjects), desc="synth subjects", unit="subject")):
        subject = make_subject(subject_id, people[si], synth.width, synth.height,
                               _rng(seed, subject_id, "identity"), FACE_FRACTION["bp4d"])
        renderer = Renderer(subject)
        members: list[tuple[str, bytes]] = []
        for t in range(1, synth.tasks + 1):
            task = f"T{t}"
            video = f"{subject_id}_{task}"
            rng = _rng(seed, video)
            start = int(rng.integers(1, 400))
            n = synth.frames
            n_coded = min(n, max(2, round(synth.coded_fraction * n)))
            c0 = int(rng.integers(0, n - n_coded + 1))
            frames = list(range(start, start + n))
            rows = []
            labels = []
            for i, img, pts, expr, m, inten in _sequence(renderer, rng, n, seed, video, video, len(videos),
                                                          _moving(ds, synth)):
                data = _encode_jpeg(img, synth.jpeg_quality)
                rel = ds.pattern("frames").format(subject=subject_id, task=task, frame=frames[i])
                atomic.write_bytes(root / rel, data)
                if synth.zip:
                    members.append((ds.pattern("zip_member").format(subject=subject_id, task=task,
                                                                     frame=frames[i]), data))
                rows.append((pts, expr, m, inten))
                labels.append(inten)
            lab = np.array(labels)[c0:c0 + n_coded]  # (n_coded, A)
            coded_frames = frames[c0:c0 + n_coded]
            values = {au: lab[:, col[au]].tolist() for au in ds.aus}
            n_nine = int(round(synth.nine_fraction * n_coded))
            if synth.nine_fraction > 0 and n_coded >= 4:
                n_nine = max(1, n_nine)
            for k in rng.choice(n_coded, size=min(n_nine, n_coded), replace=False):
                au = ds.aus[int(rng.integers(0, len(ds.aus)))]
                values[au][int(k)] = 9
            for au in ds.aus:
                rel = ds.pattern("labels").format(au=au, subject=subject_id, task=task)
                atomic.write_bytes(root / rel, _label_text(coded_frames, values[au]))
            _save_sidecar(root, video, frames, rows, subject.points)
            videos.append(video)
        if synth.zip:
            zpath = root / ds.pattern("zip").format(subject=subject_id)
            with atomic.replacing(zpath) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for member, data in members:
                    info = zipfile.ZipInfo(member, date_time=(2013, 1, 1, 0, 0, 0))
                    zf.writestr(info, data)
    return videos


def _generate_disfa(ds: DatasetConfig, synth: SynthConfig, seed: int, root: Path,
                    people: list[Recipe]) -> list[str]:
    videos = []
    motion_aus = sorted(AU_MOTION)
    fourcc = cv2.VideoWriter_fourcc(*synth.codec)
    for si, subject_id in enumerate(tqdm(subject_ids("disfa", synth.subjects), desc="synth subjects", unit="subject")):
        subject = make_subject(subject_id, people[si], synth.width, synth.height,
                               _rng(seed, subject_id, "identity"), FACE_FRACTION["disfa"])
        renderer = Renderer(subject)
        rng = _rng(seed, subject_id)
        path = root / ds.pattern("video").format(subject=subject_id)
        rows, labels = [], []
        with atomic.replacing(path) as tmp:  # the temp name keeps the extension: it picks the container
            writer = cv2.VideoWriter(str(tmp), fourcc, float(synth.fps), (synth.width, synth.height))
            if writer.isOpened() and synth.codec == "MJPG":
                writer.set(cv2.VIDEOWRITER_PROP_QUALITY, float(synth.jpeg_quality))
            if not writer.isOpened():
                raise FauError(f"{path}: OpenCV cannot write a {synth.codec} video here")
            try:
                for i, img, pts, expr, m, inten in _sequence(renderer, rng, synth.frames, seed, subject_id,
                                                              subject_id, len(videos), _moving(ds, synth)):
                    writer.write(img)
                    rows.append((pts, expr, m, inten))
                    labels.append(inten)
            finally:
                writer.release()
        frames = list(range(1, synth.frames + 1))
        lab = np.array(labels)
        for au in ds.aus:
            rel = ds.pattern("labels").format(au=au, subject=subject_id)
            atomic.write_bytes(root / rel, _label_text(frames, lab[:, motion_aus.index(au)].tolist()))
        _save_sidecar(root, subject_id, frames, rows, subject.points)
        videos.append(subject_id)
    return videos


def generate(ds: DatasetConfig, synth: SynthConfig, seed: int) -> Path:
    """Write the synthetic dataset at `ds.root` in the layout of `ds.kind`; returns the manifest path."""
    _check_aus(ds)
    if synth.frames < 2 or synth.subjects < 1 or synth.tasks < 1:
        raise FauError("config keys 'synth.frames' (>= 2), 'synth.subjects' and 'synth.tasks' (>= 1) are too small")
    if synth.width < 160 or synth.height < 160:
        raise FauError(f"config keys 'synth.width'/'synth.height' ({synth.width}x{synth.height}) are below 160 px")
    if ds.kind not in ("bp4d", "disfa"):
        raise FauError(f"config key 'dataset.kind' is {ds.kind!r}; expected bp4d or disfa")
    root = Path(ds.root)
    root.mkdir(parents=True, exist_ok=True)
    ids = subject_ids(ds.kind, synth.subjects)
    people = recipes(synth.subjects, seed)
    if ds.kind == "bp4d":
        videos = _generate_bp4d(ds, synth, seed, root, people)
    else:
        videos = _generate_disfa(ds, synth, seed, root, people)
    subjects = {sid: r.to_dict() for sid, r in zip(ids, people)}
    sources = sorted({n for r in people for n, _ in r.sources})
    manifest = {"kind": ds.kind, "seed": int(seed), "aus": list(ds.aus), "videos": videos,
                "subjects": subjects, "people": len(people), "source_photos": sources,
                "unlabelled_motion": list(_moving(ds, synth)[1]),
                "source_people": sorted({PHOTOS[n].person for n in sources}),
                "synth": to_plain(synth), "patterns": {k: ds.pattern(k) for k in _pattern_keys(ds.kind)}}
    path = root / SIDECAR / "manifest.json"
    atomic.write_bytes(path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return path


def _pattern_keys(kind: str) -> tuple[str, ...]:
    return ("frames", "zip", "zip_member", "labels") if kind == "bp4d" else ("video", "labels")


def load_truth(root: Path, video: str) -> dict[str, np.ndarray]:
    """The ground-truth sidecar of one synthetic video."""
    path = Path(root) / SIDECAR / f"{video}_landmarks.npz"
    if not path.is_file():
        raise FauError(f"{path}: no synthetic ground truth for video {video}")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
