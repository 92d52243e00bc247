"""Synthetic people from the shipped face photos (src/fau/assets/faces/).

Three steps, each deterministic:

1. `photo(name)`: a shipped photo and its 68 dlib landmarks (once per process).
2. `neutral_photo(name)`: the photo with a *neutral* face, so that intensity 0
   means the same face for everyone. Its mouth, brow and lid landmarks are
   moved to the neutral configuration of the average face (`NEUTRAL_REF`),
   placed by the face's rigid points (eye corners, nose, upper jaw): mouth
   and brows by the least-squares similarity of the rigid points, each eye's
   lids by the similarity of its two corners; an open jaw is closed by the
   lip gap it adds. The photo is warped piecewise-affinely onto those points
   (a ring of fixed anchors keeps the rest still); where the photo's lips
   were apart (teeth), the closed lips get a lip seam painted over the
   squeezed teeth.
3. `make_subject`: a new person, a morph of two or three neutral photos of
   different people (`Recipe`: sources and weights, the dominant first):
   every source is aligned to the dominant one, warped onto the weighted
   mean shape, its face colour pulled towards the dominant's, and the faces
   cross-dissolved inside a feathered face mask (hair, clothes and
   background from the dominant photo). Then the person's own shape (random
   per-feature scalings about the face axes that keep the mouth's vertical
   configuration), skin tone (Lab shift inside the face), lighting (gain,
   gamma, a light ramp), how deep their furrows get (`appearance.Skin`),
   optional mirroring, and placement on a backdrop in a frame of the
   configured size.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..align import similarity, transform
from ..config import LandmarksConfig
from ..errors import FauError
from .appearance import Skin
from .expressions import MIRROR, face_axes
from .warp import delaunay, ring_points, warp_piecewise


@dataclass(frozen=True)
class Photo:
    name: str  # file in src/fau/assets/faces/
    person: str  # who it shows (three photos show the same man)
    sex: str  # "F" | "M" (BP4D-style subject IDs)


PHOTOS: dict[str, Photo] = {p.name: p for p in (
    Photo("astronaut.jpg", "eileen_collins", "F"),
    Photo("obama3.jpg", "barack_obama", "M"),
    Photo("biden.jpg", "joe_biden", "M"),
    Photo("grace_hopper.jpg", "grace_hopper", "F"),
    Photo("AverageMaleFace.jpg", "average_male_face", "M"),
    Photo("obama.jpg", "barack_obama", "M"),
    Photo("obama2.jpg", "barack_obama", "M"),
)}
ORDER = tuple(PHOTOS)  # dominant photo of subject i: ORDER[i % 7]
NEUTRAL_REF = "AverageMaleFace.jpg"  # the neutral configuration every face is brought to

RIGID = (0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
MOUTH = tuple(range(48, 68))
BROWS = tuple(range(17, 27))
EYES = (((36, 39), (37, 38, 40, 41)), ((42, 45), (43, 44, 46, 47)))  # (corners, lids) per eye
JAW_CLOSE = {8: 1.0, 7: 0.95, 9: 0.95, 6: 0.8, 10: 0.8, 5: 0.55, 11: 0.55, 4: 0.3, 12: 0.3}
MIN_GAP = 0.012  # inner-lip gap of a closed mouth (IOD): keeps the lip triangles non-degenerate
OPEN_GAP = 0.05  # a photo whose inner lips are further apart (IOD) shows teeth: paint a seam


def faces_dir() -> Path:
    return Path(str(resources.files("fau") / "assets" / "faces"))


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@functools.lru_cache(maxsize=None)
def photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, 68 landmarks (68, 2)) of one shipped photo; cached, read-only."""
    from ..landmarks import LandmarkDetector

    path = faces_dir() / name
    img = cv2.imread(str(path))
    if img is None:
        raise FauError(f"{path}: shipped face photo missing or unreadable")
    ok, _, _, pts = LandmarkDetector(LandmarksConfig(detect_width=10_000, track=False)).detect(img)
    if not ok:
        raise FauError(f"{path}: dlib finds no face in this shipped photo")
    _frozen(img, pts)
    return img, pts


def inner_gap(pts: np.ndarray) -> float:
    """Inner-lip gap along the face's vertical axis, in IOD (mean of the three
    upper / lower inner-lip pairs 61-67, 62-66, 63-65)."""
    _, _, v, iod = face_axes(pts)
    return float(np.mean([(pts[lo] - pts[up]) @ v for up, lo in ((61, 67), (62, 66), (63, 65))]) / iod)


def corner_height(pts: np.ndarray) -> float:
    """Mouth-corner height relative to the lip centre, in IOD, along the face's
    vertical axis (positive: corners below the centre): mean of the outer
    corners 48, 54 minus the mean of the lip centre points 51, 57, 62, 66."""
    _, _, v, iod = face_axes(pts)
    return float(((pts[[48, 54]].mean(axis=0) - pts[[51, 57, 62, 66]].mean(axis=0)) @ v) / iod)


def neutral_points(pts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The neutral configuration (68, 2) of a face with landmarks `pts`:
    mouth, brows and lids of the reference face `ref` placed by `pts`' rigid
    points; jaw closed by the inner-lip gap it opened."""
    out = np.array(pts, dtype=np.float64)
    m = similarity(ref[list(RIGID)], out[list(RIGID)])  # (2, 3) reference -> this face
    out[list(MOUTH)] = transform(ref[list(MOUTH)], m)
    out[list(BROWS)] = transform(ref[list(BROWS)], m)
    for corners, lids in EYES:
        e = similarity(ref[list(corners)], out[list(corners)])
        out[list(lids)] = transform(ref[list(lids)], e)
    _, _, v, iod = face_axes(out)
    # A closed mouth: the inner lips meet (at MIN_GAP), around their own midline.
    for up, lo in ((61, 67), (62, 66), (63, 65)):
        mid = (out[up] + out[lo]) / 2
        out[up], out[lo] = mid - MIN_GAP / 2 * iod * v, mid + MIN_GAP / 2 * iod * v
    drop = max(0.0, inner_gap(pts) - inner_gap(out)) * iod  # px the jaw was open
    for i, w in JAW_CLOSE.items():
        out[i] = out[i] - drop * w * v
    chin_room = 0.45 * iod - float((out[8] - out[57]) @ v)  # keep the chin below the lower lip
    if chin_room > 0:
        for i, w in JAW_CLOSE.items():
            out[i] = out[i] + chin_room * w * v
    return out


def _seam(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Paint a closed-lip seam along the inner-lip midline (over squeezed teeth)."""
    _, _, v, iod = face_axes(pts)
    line = np.array([pts[60], (pts[61] + pts[67]) / 2, (pts[62] + pts[66]) / 2, (pts[63] + pts[65]) / 2, pts[64]])
    # Lip colour: the middle of the upper and lower lips.
    samples = [(pts[a] + pts[b]) / 2 for a, b in ((50, 61), (52, 63), (56, 65), (58, 67), (51, 62), (57, 66))]
    h, w = img.shape[:2]
    cols = [img[int(np.clip(round(y), 0, h - 1)), int(np.clip(round(x), 0, w - 1))].astype(np.float64)
            for x, y in samples]
    lip = np.median(np.array(cols), axis=0)
    mask = np.zeros((h, w), np.float32)
    thick = max(1, int(round(0.045 * iod)))
    cv2.polylines(mask, [np.round(line * 16).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA, shift=4)
    lips = np.zeros((h, w), np.float32)  # the lip band around the seam, softened
    cv2.polylines(lips, [np.round(line * 16).astype(np.int32)], False, 1.0, max(2, int(round(0.1 * iod))),
                  cv2.LINE_AA, shift=4)
    k = 2 * max(1, int(round(0.02 * iod))) + 1
    mask = cv2.GaussianBlur(mask, (k, k), 0)[..., None]
    lips = cv2.GaussianBlur(lips, (2 * k + 1, 2 * k + 1), 0)[..., None]
    f = img.astype(np.float32)
    f = lips * lip[None, None, :] + (1 - lips) * f  # lip colour over the squeezed teeth
    f = mask * (0.55 * lip[None, None, :]) + (1 - mask) * f  # the darker seam itself
    return np.clip(f, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def neutral_photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, landmarks) of a shipped photo with a neutral face; cached, read-only."""
    img, pts = photo(name)
    _, ref = photo(NEUTRAL_REF)
    target = neutral_points(pts, ref)
    ring = ring_points(pts, 1.45, 1.6, n=24, shift_y=0.05)
    src, dst = np.vstack([pts, ring]), np.vstack([target, ring])
    out = warp_piecewise(img, src, dst, delaunay(src, img.shape[1], img.shape[0]))
    if inner_gap(pts) > OPEN_GAP:
        out = _seam(out, target)
    _frozen(out, target)
    return out, target


@dataclass(frozen=True)
class Recipe:
    """A synthetic person: the photos morphed (dominant first) and their weights."""

    sources: tuple[tuple[str, float], ...]
    mirrored: bool = False

    @property
    def dominant(self) -> Photo:
        return PHOTOS[self.sources[0][0]]

    def to_dict(self) -> dict:
        return {"sources": [{"photo": n, "person": PHOTOS[n].person, "weight": round(w, 4)}
                            for n, w in self.sources],
                "dominant_person": self.dominant.person, "mirrored": self.mirrored}


def recipes(n: int, seed: int) -> list[Recipe]:
    """n distinct people. Person i is dominated by ORDER[i % 7] (weight
    0.55-0.75) and morphed with one or two photos of other people; each round
    over the seven photos pairs a dominant photo with partners it has not had
    yet, and every second round is mirrored."""
    out: list[Recipe] = []
    used: dict[str, set[str]] = {name: set() for name in ORDER}
    for i in range(n):
        rng = np.random.default_rng([int(seed), zlib.crc32(f"recipe/{i}".encode())])
        dom = ORDER[i % len(ORDER)]
        partners = [p for p in ORDER if PHOTOS[p].person != PHOTOS[dom].person]
        fresh = [p for p in partners if p not in used[dom]] or partners
        k = 2 if rng.uniform() < 0.3 and len(fresh) >= 2 else 1
        chosen = [fresh[j] for j in sorted(rng.choice(len(fresh), size=k, replace=False))]
        if k == 2 and PHOTOS[chosen[0]].person == PHOTOS[chosen[1]].person:
            # Two photos of one man (three show Obama): a person of three
            # sources needs three people, so the second is drawn again among
            # the others (or dropped). A seed without such a pair keeps
            # every recipe it had before this rule.
            others = [p for p in fresh if PHOTOS[p].person != PHOTOS[chosen[0]].person]
            chosen = chosen[:1] + ([others[int(rng.integers(len(others)))]] if others else [])
            chosen.sort(key=fresh.index)
            k = len(chosen)
        used[dom].update(chosen)
        w_dom = float(rng.uniform(0.55, 0.75))
        rest = rng.dirichlet(np.ones(k)) * (1 - w_dom)
        sources = ((dom, w_dom),) + tuple((p, float(w)) for p, w in zip(chosen, rest))
        out.append(Recipe(sources, mirrored=bool((i // len(ORDER)) % 2)))
    return out


def face_mask(pts: np.ndarray, shape: tuple[int, int], feather: float = 0.12) -> np.ndarray:
    """Float mask (H, W) in [0, 1] of the face: the jaw line closed over the
    forehead (brows raised by 0.55 IOD), feathered by `feather` IOD."""
    _, _, v, iod = face_axes(pts)
    forehead = pts[26:16:-1] - 0.55 * iod * v
    poly = np.vstack([pts[0:17], forehead])
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    r = max(1, int(round(feather * iod)))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r)))
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=r / 2)


def morph(sources: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Morph faces [(image, landmarks, weight)], the first one dominant: the
    weighted mean shape in the dominant photo's frame, every face warped onto
    it, secondary faces' colour pulled 80 % of the way to the dominant's,
    cross-dissolved inside the face mask; outside it the dominant photo."""
    img0, p0, _ = sources[0]
    h, w = img0.shape[:2]
    weights = np.array([s[2] for s in sources], np.float64)
    weights /= weights.sum()
    mats = [similarity(p, p0) for _, p, _ in sources]  # (2, 3) each: photo -> dominant frame
    aligned = [transform(p, m) for (_, p, _), m in zip(sources, mats)]
    mean = np.tensordot(weights, np.stack(aligned), axes=1)  # (68, 2)
    ring = ring_points(p0, 1.6, 1.8, n=24, shift_y=-0.05)
    dst = np.vstack([mean, ring])
    mask = face_mask(mean, (h, w))[..., None]  # (H, W, 1)
    lab0 = None
    acc = np.zeros((h, w, 3), np.float32)
    out0 = None
    for (img, _, _), m, a, wt in zip(sources, mats, aligned, weights):
        base = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        src = np.vstack([a, ring])
        warped = warp_piecewise(base, src, dst, delaunay(src, w, h))
        lab = cv2.cvtColor(warped, cv2.COLOR_BGR2LAB).astype(np.float32)
        inside = mask[..., 0] > 0.5
        mean_lab = lab[inside].mean(axis=0)
        if lab0 is None:
            lab0, out0 = mean_lab, warped
        else:
            lab += 0.8 * (lab0 - mean_lab)[None, None, :]
            warped = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)
        acc += wt * warped.astype(np.float32)
    out = mask * acc + (1 - mask) * out0.astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8), mean


@dataclass(frozen=True)
class Subject:
    """A synthetic person: their neutral frame and landmarks in that frame."""

    id: str
    recipe: Recipe
    frame: np.ndarray  # (H, W, 3) uint8 BGR
    points: np.ndarray  # (68, 2) landmarks of the neutral face in the frame
    skin: Skin  # how their furrows and wrinkles look (fau.synth.appearance)


def _shape(pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The person's own shape: random per-feature scalings about the face axes.
    The mouth is scaled in width and moved as a whole, so its vertical
    configuration (closed lips, corner height) stays neutral (up to the face
    length's +-6 %)."""
    centre, u, v, iod = face_axes(pts)
    rel = pts - centre
    x, y = rel @ u, rel @ v  # (68,) coordinates along the face axes
    out_x, out_y = x.copy(), y.copy()
    out_x *= rng.uniform(0.93, 1.07)  # face width
    out_y *= rng.uniform(0.94, 1.06)  # face length
    jaw = np.arange(0, 17)
    out_x[jaw] *= rng.uniform(0.95, 1.06)  # jaw width
    for sl in (np.arange(36, 42), np.arange(42, 48)):
        c = x[sl].mean()
        out_x[sl] = c * rng.uniform(0.96, 1.05) + (x[sl] - c) * rng.uniform(0.92, 1.1)
    eyes = np.arange(36, 48)
    out_y[eyes] += rng.uniform(-0.02, 0.02) * iod
    out_y[np.arange(17, 27)] += rng.uniform(-0.05, 0.04) * iod
    out_y[np.arange(29, 36)] += rng.uniform(-0.04, 0.05) * iod
    nose = np.arange(31, 36)
    out_x[nose] = x[33] + (x[nose] - x[33]) * rng.uniform(0.9, 1.12)
    mouth = np.arange(48, 68)
    cm = x[mouth].mean()
    out_x[mouth] = cm + (x[mouth] - cm) * rng.uniform(0.9, 1.1)
    out_y[mouth] += rng.uniform(-0.03, 0.04) * iod
    return centre + out_x[:, None] * u[None, :] + out_y[:, None] * v[None, :]


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A studio-like backdrop: vertical gradient of two muted colours + soft texture."""
    top = rng.uniform(60, 200, size=3)
    bottom = top * rng.uniform(0.55, 0.9)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    bg = (1 - t) * top[None, None, :] + t * bottom[None, None, :]  # (H, 1, 3)
    tex = rng.normal(0, 8, size=(max(2, height // 64), max(2, width // 64), 3)).astype(np.float32)
    tex = cv2.resize(tex, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(bg + tex, 0, 255).astype(np.uint8)


def _skin_and_light(img: np.ndarray, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Skin tone (a Lab shift inside the face) and lighting (gamma, channel
    gains, a linear light ramp over the whole photo)."""
    mask = face_mask(pts, img.shape[:2], feather=0.3)[..., None]
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB).astype(np.float32)
    shift = np.array([rng.uniform(-18, 12), rng.uniform(-5, 8), rng.uniform(-6, 10)], np.float32)
    lab += mask * shift[None, None, :]
    img = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)
    f = img.astype(np.float32) / 255.0
    f = f ** rng.uniform(0.85, 1.2)
    f *= rng.uniform(0.88, 1.1, size=3)[None, None, :]
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float32)
    ramp = ((xx - xx.mean()) * np.cos(ang) + (yy - yy.mean()) * np.sin(ang)) / max(img.shape[:2])
    f *= (1.0 + rng.uniform(0.1, 0.35) * ramp)[..., None]
    return np.clip(f * 255.0, 0, 255).astype(np.uint8)


def make_subject(subject_id: str, recipe: Recipe, width: int, height: int, rng: np.random.Generator,
                 face_fraction: float) -> Subject:
    """Compose the neutral frame of one synthetic person.

    The face (landmarks 0..16 span) is scaled to `face_fraction` of
    min(width, height) and centred a little above the frame centre."""
    img, pts = morph([(*neutral_photo(name), w) for name, w in recipe.sources])
    if recipe.mirrored:
        img = np.ascontiguousarray(img[:, ::-1])
        pts = pts[MIRROR].copy()
        pts[:, 0] = img.shape[1] - 1 - pts[:, 0]
    shaped = _shape(pts, rng)
    ring = ring_points(pts, 1.5, 1.7, n=20, shift_y=-0.1)
    src, dst = np.vstack([pts, ring]), np.vstack([shaped, ring])
    img = warp_piecewise(img, src, dst, delaunay(src, img.shape[1], img.shape[0]))
    pts = shaped
    img = _skin_and_light(img, pts, rng)
    face_w = np.hypot(*(pts[16] - pts[0]))
    scale = face_fraction * min(width, height) / face_w
    centre = pts.mean(axis=0)
    target = np.array([width / 2 + rng.uniform(-0.03, 0.03) * width, height * rng.uniform(0.43, 0.5)])
    m = np.array([[scale, 0, target[0] - scale * centre[0]], [0, scale, target[1] - scale * centre[1]]])
    placed = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(np.full(img.shape[:2], 255, np.uint8), m, (width, height), flags=cv2.INTER_LINEAR)
    feather = max(3, int(0.02 * min(width, height))) | 1
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2)
    mask = cv2.GaussianBlur(mask, (2 * feather + 1, 2 * feather + 1), 0).astype(np.float32)[..., None] / 255.0
    frame = (mask * placed + (1 - mask) * _background(rng, width, height)).astype(np.uint8)
    frame_pts = pts * scale + m[:, 2][None, :]
    return Subject(id=subject_id, recipe=recipe, frame=frame, points=frame_pts, skin=Skin.random(rng))
