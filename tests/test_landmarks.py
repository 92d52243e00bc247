"""dlib landmarks: found on the synthetic frames, following the intended warp,
accurate on annotated photos, NaN rows (never a crash) without a face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fau.config import LandmarksConfig
from fau.datasets import read_frame_table
from fau.datasets.frames import iter_frames
from fau.synth import load_truth
from fau.landmarks import COLUMNS, LandmarkDetector, points_array

AU_OWN = {12: [48, 54], 26: [7, 8, 9, 57]}  # the lip corners; the chin and lower lip


@pytest.fixture(scope="module")
def detected(bp4d, disfa, detector):
    out = {}
    for ds in (bp4d, disfa):
        table = read_frame_table(ds)
        for video, rows in table.groupby("video"):
            out[(ds.kind, video)] = detector.detect_video(iter_frames(ds.root, rows), total=len(rows))
    return out


def test_face_found_on_synthetic_frames(detected):
    success = np.concatenate([t["success"].to_numpy() for t in detected.values()])
    assert len(success) >= 60
    assert success.mean() >= 0.99
    t = next(iter(detected.values()))
    assert list(t.columns) == COLUMNS


def test_landmarks_match_intended_points(detected, disfa, bp4d):
    for (kind, video), table in detected.items():
        root = Path((bp4d if kind == "bp4d" else disfa).root)
        truth = load_truth(root, video)
        idx = {f: i for i, f in enumerate(truth["frames"])}
        gt = truth["points"][[idx[f] for f in table["frame"]]]
        det = points_array(table)
        iod = np.linalg.norm(gt[:, 36:42].mean(1) - gt[:, 42:48].mean(1), axis=1)
        err = np.nanmean(np.linalg.norm(det - gt, axis=2), axis=1) / iod
        assert np.nanmedian(err) < 0.1, video


@pytest.mark.parametrize("au", [12, 26])
def test_detected_displacement_follows_au_warp(au, detected, disfa):
    """Regress detected against intended displacement of the AU's own landmarks
    (head motion removed, per-landmark means removed): gain >= 0.5. dlib's
    68-point model, trained on real faces, follows the synthetic expressions
    only partly at their largest (intensity 5 moves the lip corners 0.3 IOD):
    0.64-0.66 measured here; a broken warp or a landmark stage that ignored
    the face's motion gives ~0."""
    det_all, int_all = [], []
    for (kind, video), table in detected.items():
        if kind != "disfa":
            continue
        truth = load_truth(Path(disfa.root), video)
        det = points_array(table)  # (T, 68, 2)
        ok = table["success"].to_numpy() == 1
        head = truth["head"]  # (T, 2, 3) expression frame -> video frame
        inv = np.array([cv2.invertAffineTransform(m) for m in head])
        det_expr = np.einsum("tij,tkj->tki", inv[:, :, :2], det) + inv[:, None, :, 2]
        own = AU_OWN[au]
        d = det_expr[ok][:, own]  # (T', n, 2)
        e = truth["expression"][ok][:, own]
        det_all.append((d - d.mean(axis=0)).ravel())
        int_all.append((e - e.mean(axis=0)).ravel())
    d, e = np.concatenate(det_all), np.concatenate(int_all)
    assert np.abs(e).max() > 5  # the AU really moved these points
    gain = float(d @ e / (e @ e))
    assert gain >= 0.5, gain


def _pts(path: Path) -> np.ndarray:
    text = path.read_text()
    return np.array(text[text.index("{") + 1:text.index("}")].split(), float).reshape(-1, 2) - 1.0  # 1-based


@pytest.mark.parametrize("name,detect_width", [("takeo.ppm", 320), ("breakingbad.jpg", 960)])
def test_accuracy_on_annotated_photos(name, detect_width, shared):
    """breakingbad has two faces; the annotated (larger) one needs a wider detection copy."""
    img = cv2.imread(str(shared / "landmarks-gt" / name))
    gt = _pts(shared / "landmarks-gt" / (Path(name).stem + ".pts"))
    ok, conf, box, pts = LandmarkDetector(LandmarksConfig(detect_width=detect_width)).detect(img)
    assert ok and conf > 0
    nme = np.linalg.norm(pts - gt, axis=1).mean() / np.linalg.norm(gt[36] - gt[45])
    assert nme <= 0.06, nme


def _video(path: Path, step: int):
    cap = cv2.VideoCapture(str(path))
    i = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % step == 0:
            yield i, img
        i += 1


def test_face_leaves_the_video(shared, detector):
    t = detector.detect_video(_video(shared / "videos" / "face_noface.mov", 4))
    s = t["success"].to_numpy()
    assert s[0] == 1 and s[-1] == 0  # the face is there at first, gone at the end
    assert set(np.unique(s)) == {0, 1}
    assert (np.diff(s) <= 0).all()  # once gone, it stays gone
    assert t.loc[s == 0, COLUMNS[2:]].isna().all().all()
    assert t.loc[s == 1, COLUMNS[2:]].notna().all().all()


def test_video_without_face(shared, detector):
    t = detector.detect_video(_video(shared / "videos" / "no_face.mp4", 6))
    assert len(t) > 5 and (t["success"] == 0).all()
    assert t[COLUMNS[2:]].isna().all().all()


def test_largest_of_several_faces(shared, detector):
    img = cv2.imread(str(shared / "faces" / "multi_face.jpg"))
    ok, _, box, pts = LandmarkDetector(LandmarksConfig(detect_width=1000, track=False)).detect(img)
    import dlib

    dets = dlib.get_frontal_face_detector()(np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)), 0)
    largest = max(dets, key=lambda d: d.width() * d.height())
    assert ok and abs(box[0] - largest.left()) < 3 and abs(box[2] - largest.right()) < 3


def test_non_contiguous_view_still_found(shared, detector):
    img = cv2.imread(str(shared / "faces" / "grace_hopper.jpg"))
    view = img[:, ::-1]  # a negative-stride view
    ok, _, _, pts = detector.detect(view)
    assert ok and pts.shape == (68, 2)


def test_tracking_detects_every_fifth_frame_with_the_same_points(disfa):
    """Landmark-driven tracking: the HOG detector runs on the first frame and
    then every `redetect_every`-th frame; the points stay those of detecting
    on every frame (median within 2 %, every frame within 5 % of the
    inter-ocular distance: between re-detections a large expression change
    moves the tracked box a little)."""
    table = read_frame_table(disfa)
    rows = table[table["video"] == "SN001"]
    frames = list(iter_frames(disfa.root, rows))
    results, runs = {}, {}
    for every in (1, 5):
        det = LandmarkDetector(LandmarksConfig(redetect_every=every))
        calls = []
        original = det._run_detector
        det._run_detector = lambda *a, **k: calls.append(1) or original(*a, **k)
        results[every] = points_array(det.detect_video(frames))
        runs[every] = len(calls)
    n = len(frames)
    assert runs[1] >= n and runs[5] <= -(-n // 5) + 1
    pts, ref = results[5], results[1]
    iod = np.linalg.norm(ref[:, 36:42].mean(1) - ref[:, 42:48].mean(1), axis=1)
    err = np.linalg.norm(pts - ref, axis=2).mean(axis=1) / iod
    assert np.isfinite(err).all() and np.median(err) < 0.02 and err.max() < 0.05, err


@pytest.mark.parametrize("jump,lasting", [(0.4, False), (0.4, True), (0.05, False)])
def test_redetection_that_jumps_is_checked_once_more(disfa, jump, lasting):
    """A re-detection whose 68 points land further from the last frame's than
    a face moves in a frame (`max_motion`: 0.2 face sizes) is most likely a
    detector box gone wrong (seen on a synthetic person with glasses and a
    cap: 16 of 68 frames off by > 0.1 inter-ocular distances before this
    rule, 2 after). That frame keeps the followed points and the detector
    runs again on the next frame, whose result is taken whatever it is: a
    one-off jump never reaches the table (every frame within 5 % IOD of
    tracking without it); a lasting one is taken one frame later, a small
    move at once (re-detection still corrects the track). SN001 has 12
    frames."""
    table = read_frame_table(disfa)
    frames = [img for _, img in iter_frames(disfa.root, table[table["video"] == "SN001"])]
    clean = points_array(LandmarkDetector(LandmarksConfig(redetect_every=5)).detect_video(enumerate(frames)))

    det = LandmarkDetector(LandmarksConfig(redetect_every=5))
    original, now, calls, shifted = det._detect, [0], [], {}
    off_frames = {5, 6, 10, 11} if lasting else ({5} if jump > 0.2 else {5, 10})  # detections off the face

    def off(grey, prev_box):
        ok, conf, box, pts = original(grey, prev_box)
        calls.append(now[0])
        if now[0] not in off_frames:
            return ok, conf, box, pts
        d = jump * float(np.sqrt(((pts - pts.mean(axis=0)) ** 2).sum(axis=1).mean()))  # face sizes -> px
        shifted[now[0]] = pts + np.array([d, 0.0])
        return ok, conf, (box[0] + d, box[1], box[2] + d, box[3]), shifted[now[0]]

    det._detect = off
    tracker, out = det.tracker(), []
    for i, img in enumerate(frames):
        now[0] = i
        ok, _, _, pts = tracker.step(img)
        assert ok
        out.append(pts)
    out = np.array(out)  # (n, 68, 2)
    if jump < 0.2:  # taken at once: the detector ran on frames 0, 5, 10 only
        assert calls == [0, 5, 10]
        np.testing.assert_allclose(out[[5, 10]], np.array([shifted[5], shifted[10]]))
    elif lasting:  # frame 5 keeps the followed points; frame 6's detection, off again, is taken
        assert calls[:3] == [0, 5, 6]
        assert not np.allclose(out[5], shifted[5])
        np.testing.assert_allclose(out[6], shifted[6])
    else:  # one-off: checked again on frame 6, clean; the track restarts there (next detection: 11)
        assert calls == [0, 5, 6, 11]
        iod = np.linalg.norm(clean[:, 36:42].mean(1) - clean[:, 42:48].mean(1), axis=1)
        err = np.linalg.norm(out - clean, axis=2).mean(axis=1) / iod
        assert err.max() < 0.05, err
