"""The synthetic benchmark is a fair test: a neutral zero for everyone, and
distinct people (morphs of several photos), recorded in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fau.align import alignment
from fau.config import BP4D_AUS, DISFA_AUS, CropsConfig, DatasetConfig, FoldsConfig, SynthConfig
from fau.datasets import read_frame_table
from fau.folds import make_folds, person_groups
from fau.synth import generate, load_truth
from fau.synth.faces import ORDER, PHOTOS, faces_dir, recipes

# 8 people (all seven photos dominate one, the first twice), 2 short tasks each, small frames; the
# unlabelled AUs move as in the embedded default (config.yaml: synth.other_aus).
SYNTH = SynthConfig(subjects=8, tasks=2, frames=16, width=300, height=400, other_aus=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> DatasetConfig:
    ds = DatasetConfig(name="people", kind="bp4d", root=str(tmp_path_factory.mktemp("people") / "BP4D"),
                       aus=BP4D_AUS)
    generate(ds, SYNTH, seed=3)
    return ds


def _axes(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Vertical face axis (towards the chin) and inter-ocular distance, from the eye centres."""
    d = pts[42:48].mean(axis=0) - pts[36:42].mean(axis=0)
    iod = float(np.hypot(*d))
    return np.array([-d[1], d[0]]) / iod, iod


def _gap(pts: np.ndarray) -> float:
    v, iod = _axes(pts)
    return float(np.mean([(pts[lo] - pts[up]) @ v for up, lo in ((61, 67), (62, 66), (63, 65))]) / iod)


def _corner_height(pts: np.ndarray) -> float:
    v, iod = _axes(pts)
    return float((pts[[48, 54]].mean(axis=0) - pts[[51, 57, 62, 66]].mean(axis=0)) @ v / iod)


def _average_face_corner_height() -> float:
    """The reference: the shipped average face's own landmarks, found by dlib on the photo."""
    from fau.landmarks import LandmarkDetector
    from fau.config import LandmarksConfig

    img = cv2.imread(str(faces_dir() / "AverageMaleFace.jpg"))
    ok, _, _, pts = LandmarkDetector(LandmarksConfig(detect_width=10_000, track=False)).detect(img)
    assert ok
    return _corner_height(pts)


def test_frames_with_all_labels_zero_show_a_neutral_face(dataset):
    """Every frame whose label files say 0 for every AU: lips closed (inner-lip
    gap <= 0.03 IOD) and mouth corners as high, relative to the lip centre, as
    the average face's (within 0.02 IOD), for every person."""
    ref = _average_face_corner_height()
    table = read_frame_table(dataset)
    aus = dataset.au_names
    zero = table[(table[aus] == 0).all(axis=1)]
    people_seen = set(zero["subject"])
    assert len(zero) >= 0.1 * len(table) and people_seen == set(table["subject"]), \
        "too few all-zero frames to test (videos start and end at rest)"
    checked = 0
    for video, rows in zero.groupby("video"):
        truth = load_truth(Path(dataset.root), video)
        index = {int(f): i for i, f in enumerate(truth["frames"])}
        for frame in rows["frame"]:
            pts = truth["points"][index[int(frame)]]
            assert _gap(pts) <= 0.03, (video, frame, _gap(pts))
            assert abs(_corner_height(pts) - ref) <= 0.02, (video, frame, _corner_height(pts), ref)
            checked += 1
    assert checked == len(zero)


def test_the_mouth_opens_only_with_lips_apart(dataset):
    """Lips part (gap beyond a closed mouth's) only in frames where AU25 or
    AU26 is active, and never pass through each other (AU17 pushes the lower
    lip up against the upper one, not above it). The mouth interior: the
    next test."""
    for video in json.loads((Path(dataset.root) / ".synth" / "manifest.json").read_text())["videos"]:
        truth = load_truth(Path(dataset.root), video)
        aus = list(truth["aus"])
        apart = (truth["intensities"][:, aus.index(25)] > 0) | (truth["intensities"][:, aus.index(26)] > 0)
        gaps = np.array([_gap(p) for p in truth["points"]])
        assert (gaps[~apart] <= 0.03).all(), video
        assert (gaps >= 0).all(), (video, gaps.min())
        # AU25 here only comes with a labelled AU that pulls or raises the lips (not alone).
        labelled = truth["intensities"][:, [aus.index(a) for a in BP4D_AUS]]
        assert (labelled[apart] > 0).any(axis=1).all(), video


def _brow_height(pts: np.ndarray) -> float:
    """Inner brows (20, 21, 22, 23) above the eye centres, in IOD."""
    v, iod = _axes(pts)
    return float((pts[36:48].mean(axis=0) - pts[20:24].mean(axis=0)) @ v / iod)


def _upper_lip(pts: np.ndarray) -> float:
    """Upper lip's red at the middle (outer 51 to inner 62), in IOD."""
    v, iod = _axes(pts)
    return float((pts[62] - pts[51]) @ v / iod)


def test_unlabelled_aus_move_brows_and_lips_without_a_label(dataset):
    """A real face moves more than its coded AUs (synth.other_aus): people
    lower and raise their brows (no labelled BP4D AU moves a brow) and press
    their lips thinner in frames labelled without the AUs that thin them
    (AU14, AU17), measured on the intended landmarks against the person's
    own neutral face. The manifest names the AUs that move unlabelled. (The
    neutral-zero test above holds with them: closed lips, corners at the
    neutral height wherever every label is 0.)"""
    manifest = json.loads((Path(dataset.root) / ".synth" / "manifest.json").read_text())
    assert manifest["unlabelled_motion"] == [1, 2, 4, 5, 7, 23, 24]
    table = read_frame_table(dataset)
    brows, lips = [], []
    for video, rows in table.groupby("video"):
        truth = load_truth(Path(dataset.root), video)
        index = {int(f): i for i, f in enumerate(truth["frames"])}
        neutral = truth["neutral"]
        for frame, au14, au17 in rows[["frame", "AU14", "AU17"]].itertuples(index=False):
            pts = truth["expression"][index[int(frame)]]
            brows.append(_brow_height(pts) - _brow_height(neutral))
            if au14 == 0 and au17 == 0:
                lips.append(_upper_lip(pts) - _upper_lip(neutral))
    brows, lips = np.array(brows), np.array(lips)
    assert (brows < -0.05).sum() >= 3 and (brows > 0.05).sum() >= 3, np.round(np.sort(brows), 3)  # lowered, raised
    assert (lips < -0.01).sum() >= 3, np.round(np.sort(lips), 3)  # lips pressed thinner
    assert (np.abs(brows) < 0.005).sum() >= 0.2 * len(brows)  # and at rest in many (the videos' ends)


def test_without_other_aus_only_labelled_aus_move():
    from fau.synth.expressions import AU_MOTION, OTHER_AUS, au_trajectories

    aus = tuple(sorted(AU_MOTION))
    others = [aus.index(a) for a in OTHER_AUS]
    for seed in range(5):
        plain = au_trajectories(np.random.default_rng(seed), aus, 40, offset=seed, labelled=BP4D_AUS)
        assert not plain[:, others].any()
        moving = au_trajectories(np.random.default_rng(seed), aus, 40, offset=seed, labelled=BP4D_AUS,
                                 others=OTHER_AUS)
        assert moving[:, others].any()


def test_strong_aus_together_never_fold_the_lips_or_the_lids():
    """Every AU at full intensity at once (lips thinned by AU14, AU17, AU23,
    AU24 together; the eye narrowed by AU6 and AU7): each lip's outer contour
    stays outside its inner one and each lower lid below its upper lid, on
    every shipped photo's person (a fold would warp the skin inside out)."""
    from fau.synth.expressions import AU_MOTION, au_displacement
    from fau.synth.faces import make_subject

    for i, recipe in enumerate(recipes(7, seed=3)):
        pts = make_subject(f"P{i}", recipe, 300, 400, np.random.default_rng(i), 0.45).points
        for combo in ({au: 5.0 for au in AU_MOTION if au not in (5, 25, 26)}, {6: 5.0, 7: 5.0},
                      {14: 5.0, 17: 5.0, 23: 5.0, 24: 5.0}):
            moved = pts + au_displacement(pts, combo)
            v, _ = _axes(moved)
            for up, lo in ((50, 61), (51, 62), (52, 63), (65, 56), (66, 57), (67, 58),
                           (37, 41), (38, 40), (43, 47), (44, 46)):
                assert (moved[lo] - moved[up]) @ v > 0, (recipe.sources[0][0], combo, up, lo)


def _people_renderers():
    """(photo name, Renderer) of one person dominated by each shipped photo, at 300 x 400."""
    from fau.synth.faces import make_subject
    from fau.synth.generate import Renderer

    for i, recipe in enumerate(recipes(7, seed=3)):  # every photo dominates one person
        yield recipe.sources[0][0], Renderer(make_subject(f"P{i}", recipe, 300, 400, np.random.default_rng(i), 0.45))


def _frame(renderer, intensities: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(frame, intended landmarks) without head motion."""
    return renderer.render(intensities, renderer.head_matrix(0.0, 1.0, 0.0, 0.0), noise_seed=1)


def _render(renderer, intensities: dict[int, float]) -> np.ndarray:
    return _frame(renderer, intensities)[0]


def test_the_mouth_interior_is_drawn_only_where_au25_or_au26_part_the_lips(monkeypatch):
    """Each AU at full intensity (5), alone and all together, and AU25 / AU26
    at 2, rendered as generated and with the mouth-interior painting turned
    off: the frames differ only where AU25 or AU26 is active. (AU17 pushes
    the lower lip up against the upper one and AU10 lifts the upper lip:
    neither opens a dark mouth with teeth. Before this was fixed, AU17's
    lower lip crossed the upper one and AU10's gap both painted it.)"""
    from fau.synth.expressions import AU_MOTION
    from fau.synth.generate import Renderer

    closed = [{au: 5.0} for au in AU_MOTION if au not in (25, 26)]
    closed.append({au: 5.0 for au in AU_MOTION if au not in (25, 26)})
    parted = [{25: 2.0}, {26: 2.0}, {25: 2.0, 17: 5.0, 10: 5.0}]
    for name, renderer in _people_renderers():
        drawn = [_render(renderer, inten) for inten in closed + parted]
        with monkeypatch.context() as m:
            m.setattr(Renderer, "mouth_interior", lambda self, img, *args: img)
            plain = [_render(renderer, inten) for inten in closed + parted]
        for inten, a, b in zip(closed, drawn, plain):
            assert np.array_equal(a, b), f"{name}: mouth interior drawn for {inten}"
        for inten, a, b in zip(parted, drawn[len(closed):], plain[len(closed):]):
            assert np.abs(a.astype(int) - b).sum(axis=2).astype(bool).sum() > 50, \
                f"{name}: no mouth interior for {inten}"


def _mouth_pixels(renderer, intensities: dict[int, float]) -> np.ndarray:
    """HSV pixels (n, 3) of a rendered frame inside the polygon of its intended inner-lip landmarks 60-67."""
    img, expr = _frame(renderer, intensities)
    inside = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(expr[60:68]).astype(np.int32)], 1)
    return cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[inside.astype(bool)]


def test_an_open_smile_shows_teeth_and_a_dropped_jaw_the_dark_mouth():
    """What the opened mouth looks like, measured on the rendered pixels
    inside the intended inner-lip polygon of every photo's person: a broad
    smile with the lips apart (AU12 5, AU6 4, AU25 2, as the generator
    couples them) shows teeth over most of the opening, as a real posed
    smile does: >= 75 % teeth (bright and unsaturated: HSV S < 70, V > 140)
    and <= 15 % dark mouth (V < 80). A dropped jaw (AU26 5, AU25 3) shows
    the dark mouth between the teeth: >= 50 % dark, >= 20 % teeth. Until
    2026-11-28 the teeth were a band of at most 0.45 of the opening under
    the polygon of the inner-lip points: the smile was 58-65 % teeth and
    29-36 % dark, a dark gull-wing slit that real smiles do not show."""
    for name, renderer in _people_renderers():
        for inten, teeth_bar, dark_bar in (({12: 5.0, 6: 4.0, 25: 2.0}, (0.75, 1.0), (0.0, 0.15)),
                                           ({26: 5.0, 25: 3.0}, (0.2, 1.0), (0.5, 1.0))):
            hsv = _mouth_pixels(renderer, inten)  # (n, 3)
            teeth = float(((hsv[:, 1] < 70) & (hsv[:, 2] > 140)).mean())
            dark = float((hsv[:, 2] < 80).mean())
            print(f"{name} {inten}: teeth {teeth:.2f}, dark {dark:.2f} of the opening")  # pytest -s
            assert teeth_bar[0] <= teeth <= teeth_bar[1], f"{name} {inten}: teeth {teeth:.2f} of the opening"
            assert dark_bar[0] <= dark <= dark_bar[1], f"{name} {inten}: dark mouth {dark:.2f} of the opening"


def test_every_person_is_a_morph_of_several_photos_recorded_in_the_manifest(dataset):
    manifest = json.loads((Path(dataset.root) / ".synth" / "manifest.json").read_text())
    subjects = manifest["subjects"]
    assert len(subjects) == SYNTH.subjects == manifest["people"]
    recipes_seen = set()
    for sid, rec in subjects.items():
        sources = rec["sources"]
        assert len(sources) >= 2, sid
        assert abs(sum(s["weight"] for s in sources) - 1) < 1e-3
        assert len({s["person"] for s in sources}) == len(sources), f"{sid}: one person twice"
        assert sources[0]["weight"] == max(s["weight"] for s in sources)  # dominant first
        assert rec["dominant_person"] == sources[0]["person"]
        key = tuple((s["photo"], s["weight"]) for s in sources) + (rec["mirrored"],)
        assert key not in recipes_seen, f"{sid} repeats another person's recipe"
        recipes_seen.add(key)
    # All seven shipped photos take part, the average face and Biden included.
    assert set(manifest["source_photos"]) == set(PHOTOS) and len(PHOTOS) == 7
    assert {s["photo"] for r in subjects.values() for s in r["sources"]} == set(PHOTOS)


def _texture(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Band-pass texture of the aligned face, normalised (for correlations)."""
    crop = cv2.warpAffine(img, alignment(pts, CropsConfig().template), (256, 256))
    g = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32), (128, 128))
    lap = cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 1.5), cv2.CV_32F)
    return (lap - lap.mean()) / lap.std()


def test_no_two_people_are_the_same_photo_recoloured(dataset):
    """The first frame of each person's first task (labels 0: neutral): the
    aligned faces' texture correlates far less between two people than
    between a frame and a recoloured copy of it."""
    root = Path(dataset.root)
    manifest = json.loads((root / ".synth" / "manifest.json").read_text())
    faces = {}
    for sid in manifest["subjects"]:
        truth = load_truth(root, f"{sid}_T1")
        img = cv2.imread(str(root / sid / "T1" / f"{int(truth['frames'][0])}.jpg"))
        faces[sid] = (img, truth["points"][0])
    feats = {sid: _texture(*f) for sid, f in faces.items()}
    sid0, (img0, pts0) = next(iter(faces.items()))
    recoloured = np.clip(img0.astype(np.float32) * [0.8, 1.1, 1.05] + 12, 0, 255).astype(np.uint8)
    assert float((feats[sid0] * _texture(recoloured, pts0)).mean()) > 0.95
    ids = list(feats)
    worst = max(float((feats[a] * feats[b]).mean()) for i, a in enumerate(ids) for b in ids[i + 1:])
    assert worst < 0.6, worst


def test_no_person_is_morphed_from_two_photos_of_one_man_in_any_seed():
    """Three of the photos show Obama: a three-source person drawn with two
    of them as partners would be a morph of two people, not three. The
    manifest test above sees one seed; the recipes of 40 seeds are checked
    here (the default's 48 people and DISFA's 12)."""
    for seed in range(40):
        for r in [*recipes(48, seed), *recipes(12, seed)]:
            shown = [PHOTOS[name].person for name, _ in r.sources]
            assert len(set(shown)) == len(shown), (seed, r.sources)
            assert abs(sum(w for _, w in r.sources) - 1) < 1e-9


def test_default_recipes_use_every_photo_as_dominant_and_disfa_too(tmp_path):
    people = recipes(48, seed=0)  # the default's people
    assert [r.sources[0][0] for r in people[:7]] == list(ORDER)
    assert len({(r.sources, r.mirrored) for r in people}) == 48
    # The DISFA layout gets the same kind of people.
    ds = DatasetConfig(name="p_disfa", kind="disfa", root=str(tmp_path / "DISFA"), aus=DISFA_AUS)
    generate(ds, SynthConfig(subjects=2, frames=4, width=256, height=192), seed=0)
    manifest = json.loads((tmp_path / "DISFA" / ".synth" / "manifest.json").read_text())
    assert list(manifest["subjects"]) == ["SN001", "SN002"]
    assert all(len(r["sources"]) >= 2 for r in manifest["subjects"].values())


def test_people_of_the_default_size_who_look_alike_stay_on_one_side_of_every_fold(tmp_path):
    """48 people (the default's count) from 7 photos: about seven share each
    dominant photo, four of them with the same mirroring, and their aligned
    faces' texture can correlate as a photo's own would (in the default's
    data of seeds 0 / 1 / 2: 32 / 29 / 39 pairs above 0.5, up to 0.90;
    the 12-person set of the earlier default: at most 0.32). Such
    look-alikes must never be split by a fold: every pair whose texture
    correlates above 0.5 is in one person group (across groups the default's
    data reaches 0.29), so the person folds test them together. Small
    frames, one frame each; the texture is the reference, not the manifest."""
    ds = DatasetConfig(name="many", kind="bp4d", root=str(tmp_path / "BP4D"), aus=BP4D_AUS)
    generate(ds, SynthConfig(subjects=48, tasks=1, frames=2, width=240, height=320), seed=0)
    root = Path(ds.root)
    groups = person_groups(root / ".synth" / "manifest.json")
    feats = {}
    for sid in groups:
        truth = load_truth(root, f"{sid}_T1")
        img = cv2.imread(str(root / sid / "T1" / f"{int(truth['frames'][0])}.jpg"))
        feats[sid] = _texture(img, truth["points"][0])
    ids = sorted(feats)
    alike = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if float((feats[a] * feats[b]).mean()) > 0.5]
    assert alike, "48 people from 7 photos without a look-alike pair: the reference no longer sees them"
    assert all(groups[a] == groups[b] for a, b in alike), [(a, b) for a, b in alike if groups[a] != groups[b]]
    for fold in make_folds(ids, FoldsConfig(k=3, group_by="person"), groups):
        test = set(fold["test"])
        assert all((a in test) == (b in test) for a, b in alike), fold["name"]
