"""`fau predict` on real videos, images and folders: the OpenFace 2 CSV
layout, frames without a face, bad inputs, the overlay, and the same
intensities as `fau evaluate` on a dataset's own frames."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_fau
from model_fixtures import AU_NAMES, fold, make_annotation_set, tiny_config, train_into

OPENFACE_AU_R = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15", "AU17",
                 "AU20", "AU23", "AU25", "AU26", "AU45"]
OPENFACE_AU_C = sorted(OPENFACE_AU_R + ["AU28"])


def openface2_header() -> list[str]:
    """OpenFace 2.x FeatureExtraction's header for a sequence with every
    output on (RecorderCSV::Open: 56 eye landmarks, 68 face landmarks, 34
    shape modes), as written there: names joined by ", "."""
    cols = ["frame", "face_id", "timestamp", "confidence", "success",
            "gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"]
    for axis in ("x", "y", "X", "Y", "Z"):
        cols += [f"eye_lmk_{axis}_{i}" for i in range(56)]
    cols += ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    for axis in ("x", "y", "X", "Y", "Z"):
        cols += [f"{axis}_{i}" for i in range(68)]
    cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(34)]
    cols += [f"{a}_r" for a in OPENFACE_AU_R] + [f"{a}_c" for a in OPENFACE_AU_C]
    return cols


def read_like_openface(path: Path) -> pd.DataFrame:
    """How OpenFace users read FeatureExtraction output: strip the header's
    whitespace (OpenFace writes ", "), keep the frames with success == 1,
    take frame, timestamp and the AUxx_r columns."""
    df = pd.read_csv(path)
    df.columns = [c.strip() for c in df.columns]
    df = df[df["success"] == 1]
    return df[["frame", "timestamp"] + [c for c in df.columns if re.fullmatch(r"AU\d\d_r", c)]].reset_index(drop=True)


def raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def frame_count(path: Path) -> tuple[int, float]:
    """Frames decodable by reading through, and the container's frame rate."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n, fps


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small model (AUs 6, 12, 17; 64 px input) trained by `fau.train`,
    so model.pt records the default preprocessing as every trained model does."""
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("model")
    data = make_annotation_set(root, frames=8, seed=3)
    train_into(tiny_config(train={"epochs": 2, "lr": 1e-2}), data, fold(), root / "fold1")
    return root / "fold1" / "model.pt"


@pytest.fixture(scope="module")
def videos_out(model, shared, tmp_path_factory):
    """`fau predict` on the face-leaves-the-frame video and the no-face video."""
    out = tmp_path_factory.mktemp("pred")
    inputs = [shared / "videos" / "face_noface.mov", shared / "videos" / "no_face.mp4"]
    proc = run_fau("predict", *map(str, inputs), "--model", str(model), "--out", str(out), "--quiet", cwd=out)
    return out, proc


def test_columns_are_openface2_featureextraction_columns(videos_out):
    out, proc = videos_out
    assert proc.returncode == 0, proc.stderr
    first_line = (out / "face_noface.csv").read_text().splitlines()[0]
    assert " " not in first_line
    header = first_line.split(",")
    want = ["frame", "face_id", "timestamp", "confidence", "success"] + [f"x_{i}" for i in range(68)] + \
        [f"y_{i}" for i in range(68)] + [f"{a}_r" for a in sorted(AU_NAMES)]
    assert header == want
    # The same names in the same order as OpenFace 2 writes them (its other outputs left out).
    assert [c for c in openface2_header() if c in header] == header


def test_rows_frames_timestamps_and_empty_cells_without_a_face(videos_out, shared):
    out, _ = videos_out
    video = shared / "videos" / "face_noface.mov"
    n, fps = frame_count(video)
    header, rows = raw_rows(out / "face_noface.csv")
    assert len(rows) == n
    assert [int(r[0]) for r in rows] == list(range(1, n + 1))
    assert all(r[1] == "0" for r in rows)  # face_id
    assert [float(r[2]) for r in rows] == pytest.approx([i / fps for i in range(n)], abs=6e-4)
    success = np.array([int(r[4]) for r in rows])
    assert 0 < success.sum() < n
    for r, s in zip(rows, success):
        cells = r[5:]
        assert len(cells) == len(header) - 5
        if s:
            values = np.array(cells, float)
            assert np.isfinite(values).all() and float(r[3]) != 0
            assert (values[136:] >= 0).all() and (values[136:] <= 5).all()
        else:
            assert all(c == "" for c in cells) and r[3] == "0"
    # Independent reference: dlib's HOG detector on the full frame (upsample 1), every 8th frame.
    import dlib

    det = dlib.get_frontal_face_detector()
    cap = cv2.VideoCapture(str(video))
    agree, checked, i = 0, 0, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % 8 == 0:
            faces = det(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 1)
            agree += int(bool(len(faces)) == bool(success[i]))
            checked += 1
            if len(faces) and success[i]:  # the points lie on that face (frame pixels)
                f = max(faces, key=lambda d: d.area())
                xs, ys = np.array(rows[i][5:73], float), np.array(rows[i][73:141], float)
                assert f.left() - 10 < np.median(xs) < f.right() + 10 and f.top() - 10 < np.median(ys) < f.bottom() + 30
        i += 1
    assert agree / checked >= 0.95, (agree, checked)


def test_video_without_any_face_gives_success_0_rows_and_one_warning(videos_out, shared):
    out, proc = videos_out
    n, _ = frame_count(shared / "videos" / "no_face.mp4")
    _, rows = raw_rows(out / "no_face.csv")
    assert len(rows) == n and all(r[4] == "0" for r in rows)
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "no_face.mp4" in warnings[0] and "no face" in warnings[0]


def test_an_openface_style_reader_reads_ours_unchanged(videos_out, tmp_path):
    # The reader works on OpenFace's own format ...
    header = openface2_header()
    of_rows = []
    for frame, ok in ((1, 0), (2, 1)):
        vals = {c: "0" for c in header}
        vals.update(frame=str(frame), face_id="0", timestamp=f"{(frame - 1) / 30:.3f}", confidence="0.98",
                    success=str(ok), AU12_r="1.25" if ok else "0")
        of_rows.append(", ".join(vals[c] for c in header))
    of = tmp_path / "openface.csv"
    of.write_text(", ".join(header) + "\n" + "\n".join(of_rows) + "\n")
    got = read_like_openface(of)
    assert got["frame"].tolist() == [2] and got["AU12_r"].tolist() == [1.25] and len(got.columns) == 2 + 17
    # ... and on ours, unchanged: the frames with a face and the model's AUs, values as written.
    out, _ = videos_out
    ours = read_like_openface(out / "face_noface.csv")
    header, rows = raw_rows(out / "face_noface.csv")
    face_rows = [r for r in rows if r[4] == "1"]
    assert list(ours.columns) == ["frame", "timestamp"] + [f"{a}_r" for a in sorted(AU_NAMES)]
    assert ours["frame"].tolist() == [int(r[0]) for r in face_rows]
    assert ours.iloc[:, 2:].to_numpy() == pytest.approx(np.array([r[-3:] for r in face_rows], float))
    assert read_like_openface(out / "no_face.csv").empty


def test_images_and_folders_in_natural_order(model, shared, tmp_path):
    face = cv2.imread(str(shared / "faces" / "obama.jpg"))
    assert face is not None
    folder = tmp_path / "seq"
    folder.mkdir()
    cv2.imwrite(str(folder / "img1.png"), face)
    cv2.imwrite(str(folder / "img2.png"), np.full_like(face, 90))  # no face
    cv2.imwrite(str(folder / "img10.png"), cv2.flip(face, 1))
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "one.jpg"
    cv2.imwrite(str(single), face)
    out = tmp_path / "out"
    proc = run_fau("predict", str(folder), str(single), "--model", str(model), "--out", str(out), "--quiet",
                   "--fps", "10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _, rows = raw_rows(out / "seq.csv")
    # img1, img2, img10 (a lexicographic sort would put img10 second)
    assert [r[4] for r in rows] == ["1", "0", "1"]
    assert [r[2] for r in rows] == ["0.000", "0.100", "0.200"]
    _, one = raw_rows(out / "one.csv")
    assert len(one) == 1 and one[0][4] == "1"
    # The mirrored face: its chin point (8) mirrored back lands on the original's.
    assert float(rows[2][5 + 8]) == pytest.approx(face.shape[1] - 1 - float(rows[0][5 + 8]), abs=4)


def test_bad_inputs_one_line_each_others_done_nonzero_exit(model, shared, tmp_path):
    bad_video = tmp_path / "corrupt.mp4"
    bad_video.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    empty_png = tmp_path / "empty.png"
    empty_png.write_bytes(b"")
    text = tmp_path / "notes.avi"
    text.write_text("hello")
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(shared / "videos" / "single_face.mp4"))
    for i in range(4):
        ok, img = cap.read()
        cv2.imwrite(str(folder / f"{i}.jpg"), img)
    (folder / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a corrupt frame in the middle
    missing = tmp_path / "missing.mp4"
    good = shared / "videos" / "single_face.mp4"
    out = tmp_path / "out"
    proc = run_fau("predict", str(bad_video), str(empty_png), str(text), str(folder), str(missing), str(good),
                   "--model", str(model), "--out", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 5, proc.stderr
    for path, line in zip([bad_video, empty_png, text, folder / "2.jpg", missing], errors):
        assert str(path) in line, (path, line)
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["single_face.csv"]  # nothing half-written
    _, rows = raw_rows(out / "single_face.csv")
    assert len(rows) == frame_count(good)[0]


def test_overlay_video_has_every_frame_points_and_bars(model, shared, tmp_path):
    video = shared / "videos" / "single_face.mp4"
    out = tmp_path / "out"
    proc = run_fau("predict", str(video), "--model", str(model), "--out", str(out), "--overlay", "--quiet",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    path = out / "single_face.mp4"
    n, fps = frame_count(video)
    m, fps2 = frame_count(path)
    assert m == n and fps2 == pytest.approx(fps, rel=1e-3)
    header, rows = raw_rows(out / "single_face.csv")
    cap, src = cv2.VideoCapture(str(path)), cv2.VideoCapture(str(video))
    for i in range(n):
        _, drawn = cap.read()
        _, orig = src.read()
        assert drawn.shape == orig.shape
        if i % 10 or rows[i][4] != "1":
            continue
        # green dots at the landmarks (mp4 compression blurs them: look at the 3 x 3 around)
        xs, ys = np.array(rows[i][5:73], float), np.array(rows[i][73:141], float)
        greenish = 0
        for x, y in zip(xs.round().astype(int), ys.round().astype(int)):
            patch = drawn[max(0, y - 1):y + 2, max(0, x - 1):x + 2].reshape(-1, 3).astype(int)
            greenish += int(((patch[:, 1] - np.maximum(patch[:, 0], patch[:, 2])) > 60).any())
        assert greenish >= 60, greenish
        # the AU panel (top left) is darkened and labelled; the rest of the frame far from the face is not touched
        assert drawn[2:40, 2:60].mean() < orig[2:40, 2:60].mean()
        assert np.abs(drawn[-20:, -20:].astype(int) - orig[-20:, -20:]).mean() < 6


def _dot_in_input(crop_size: int, at: np.ndarray, size: int, window: float) -> np.ndarray:
    """Where a bright dot drawn at crop pixel `at` lands in the network's
    input (the intensity-weighted centre of the input's bright pixels)."""
    from fau.preprocess import to_input

    crop = np.zeros((crop_size, crop_size), np.float32)
    cv2.circle(crop, (int(round(at[0] * 16)), int(round(at[1] * 16))), 4 * 16, 255.0, -1, cv2.LINE_AA, shift=4)
    x = to_input(crop, size, window).astype(np.float64)
    x[x < 0.5 * x.max()] = 0
    ys, xs = np.mgrid[:size, :size]
    return np.array([(xs * x).sum(), (ys * x).sum()]) / x.sum()


def test_heatmaps_map_back_onto_the_face_in_frame_pixels():
    """A heatmap made the way training targets are made, at the input pixel
    where an AU point given in frame pixels lands (found by pushing a dot
    through the crop and the model's window), peaks back at that frame point,
    with the whole crop as input and with a window of it."""
    from fau.align import alignment, transform
    from fau.config import CropsConfig
    from fau.heatmaps import encode
    from fau.overlay import heat_in_frame
    from fau.preprocess import input_box

    rng = np.random.default_rng(0)
    crops = CropsConfig()
    for _ in range(5):
        # a face of some size, position and roll in a 640 x 480 frame
        angle, scale, centre = rng.uniform(-0.4, 0.4), rng.uniform(0.5, 1.6), rng.uniform([200, 150], [440, 330])
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        base = np.zeros((68, 2))
        base[36:42] = [-40, -20]
        base[42:48] = [40, -20]
        base[48:68] = [0, 45]
        pts = centre + scale * base @ rot.T
        m = alignment(pts, crops.template)
        target = centre + scale * np.array([25.0, 30.0]) @ rot.T  # a point on the cheek, frame pixels
        for size, window in ((64, 1.0), (128, 1.0), (256, 1.0), (64, 0.75), (128, 0.6)):
            in_input = _dot_in_input(crops.size, transform(target[None], m)[0], size, window)[None]  # (1, 2)
            hm = encode(in_input, np.array([3.0]), size // 4, 4, sigma=2.0)[0]  # (S/4, S/4)
            heat, (x0, y0, _, _) = heat_in_frame(hm, m, crops.size, size, (480, 640), window)
            py, px = np.unravel_index(np.argmax(heat), heat.shape)
            # one heatmap pixel in frame pixels: 4 input px = 4 W / S crop px (W: the window's side); the
            # template's eyes are 84 crop px apart, the face's 80 scale frame px (the Gaussian's centre is
            # rounded to that grid)
            cell = 4 * input_box(crops.size, window)[2] / size * (80 * scale / 84)
            assert np.hypot(px + x0 - target[0], py + y0 - target[1]) <= cell, \
                (size, window, px + x0, py + y0, target)


def test_the_whole_crop_window_reads_the_whole_image_whatever_its_shape():
    """Window 1 resizes the whole image, as before windows existed (an MLflow
    model may be given crops that are not square); a window below 1 needs a
    square crop and says so."""
    from fau.errors import FauError
    from fau.preprocess import to_input

    img = np.zeros((120, 80, 3), np.uint8)
    img[100:] = 255  # a bright band along the bottom
    x = to_input(img, 64, 1.0)
    assert x.shape == (64, 64, 3) and x[-5:].min() > 200 and x[:40].max() == 0
    with pytest.raises(FauError, match="80 x 120 image"):
        to_input(img, 64, 0.75)


@pytest.mark.parametrize("window", [1.0, 0.75, 0.5])
def test_training_points_follow_the_pixels_through_the_window(tmp_path, window):
    """`model.input_window`: the AU points the dataset turns into training
    targets sit on the input pixels their crop pixels went to (a dot drawn
    at each point of a crop file is found at the item's point, and the
    target's peak beside it), and the window shows the face larger: the
    points' distance in the input grows as 1 / window."""
    from fau.data import AUDataset

    at = np.array([[100.0, 180.0], [158.0, 176.0]])  # AU12's two points, crop pixels (mouth corners)
    rows = []
    for k, p in enumerate(at):
        crop = np.zeros((256, 256, 3), np.uint8)
        cv2.circle(crop, (int(round(p[0] * 16)), int(round(p[1] * 16))), 5 * 16, (255, 255, 255), -1,
                   cv2.LINE_AA, shift=4)
        cv2.imwrite(str(tmp_path / f"{k}.png"), crop)
        rows.append({"imgpath": f"{k}.png", "video": "V", "subject": "S", "task": "T", "frame": k, "AU12": 2.0,
                     "AU12_x1": at[0, 0], "AU12_y1": at[0, 1], "AU12_x2": at[1, 0], "AU12_y2": at[1, 1]})
    ds = AUDataset(pd.DataFrame(rows), tmp_path, ["AU12"], 64, "per_crop", targets=True, window=window)
    ys, xs = np.mgrid[:64, :64]
    for k in range(2):
        item = ds[k]
        img = item["image"].numpy().mean(axis=0)  # (S, S)
        img[img < 0.5 * img.max()] = 0
        found = np.array([(xs * img).sum(), (ys * img).sum()]) / img.sum()
        assert np.hypot(*(found - item["points"][k].numpy())) <= 0.75, (window, k, found, item["points"][k])
        peak = np.unravel_index(np.argmax(item["target"][k].numpy()), (16, 16))
        assert np.hypot(peak[1] * 4 - found[0], peak[0] * 4 - found[1]) <= 4, (window, k, peak, found)
    spread = np.hypot(*(ds[0]["points"][1] - ds[0]["points"][0]).numpy())
    assert spread == pytest.approx(np.hypot(*(at[1] - at[0])) * 64 / 256 / window, rel=0.02)


def test_prefetch_carries_colour_and_grey_of_every_frame(shared):
    from fau.media import open_input

    media = open_input(shared / "videos" / "single_face.mp4")
    got = [(f, b.copy(), g.copy()) for f, (b, g) in media.frames(depth=2)]
    cap = cv2.VideoCapture(str(shared / "videos" / "single_face.mp4"))
    for f, b, g in got:
        ok, img = cap.read()
        assert ok and np.array_equal(b, img) and np.array_equal(g, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert [f for f, _, _ in got] == list(range(1, media.decoded + 1)) and not cap.read()[0]


# ------------------------------------------------------------ predict == evaluate

TOL = 1e-4  # AU intensity (0..5): the CSV's 4 decimals (5e-5) + fp32 batch composition (~1e-6)


@pytest.fixture(scope="module", params=["bp4d", "disfa"])
def dataset_run(request, tmp_path_factory):
    """The data chain on a synthetic dataset (its own official layout), a
    small model trained on all of it, and `fau evaluate`'s predictions of
    every frame (the fold tests all subjects)."""
    import dataclasses

    from fau import stages
    from fau.config import from_dict, to_plain
    from model_fixtures import evaluate_into, spread_outputs

    torch.set_num_threads(2)
    ds = request.getfixturevalue(request.param)
    out = tmp_path_factory.mktemp(f"chain_{request.param}")
    # BP4D's model sees a window of the crop (as the embedded default's), DISFA's the whole crop
    window = 0.75 if request.param == "bp4d" else 1.0
    cfg = from_dict({"dataset": to_plain(dataclasses.replace(ds)),
                     "model": {"backbone": "resnet18", "input_size": 64, "head_channels": [64, 32, 32],
                               "input_window": window},
                     "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "lr_milestones": [], "device": "cpu"},
                     "eval": {"batch_size": 32}, "mlflow": {"enabled": False}})
    frames = out / "index" / "frames.csv"
    stages.index(cfg, frames, out / "index" / "videos.txt")
    videos = (out / "index" / "videos.txt").read_text().split()
    tables = []
    for v in videos:
        stages.landmarks(cfg, frames, v, out / "landmarks" / f"{v}.csv")
        stages.crops(cfg, frames, out / "landmarks" / f"{v}.csv", v, out / "crops" / f"{v}.csv", out / "crops" / v)
        tables.append(out / "crops" / f"{v}.csv")
    ann = out / "annotations.csv"
    stages.annotations(cfg, tables, ann, out / "annotations.json")
    subjects = sorted(pd.read_csv(ann, dtype={"subject": str})["subject"].unique())
    everyone = {"name": "all", "train": subjects, "test": subjects}
    train_into(cfg, ann, everyone, out / "all")
    spread_outputs(out / "all" / "model.pt", ann)
    evaluate_into(cfg, ann, everyone, out / "all")
    pred = pd.read_csv(out / "all" / "predictions.csv", dtype={"video": str, "subject": str, "task": str})
    return {"cfg": cfg, "ds": ds, "out": out, "frames": pd.read_csv(frames, dtype={"video": str}), "pred": pred,
            "model": out / "all" / "model.pt", "aus": cfg.dataset.au_names}


def _source_of(run: dict, video: str, tmp: Path) -> tuple[Path, list[int]]:
    """What a user would give `fau predict` for a video of the dataset, and
    the dataset frame number of each of its frames in order. BP4D: a folder
    of the task's labelled frames (the landmark stage tracks those, in frame
    order; the task folder also holds uncoded frames); DISFA: the video."""
    rows = run["frames"][run["frames"]["video"] == video].sort_values("frame")
    root = Path(run["ds"].root)
    if run["ds"].kind == "disfa":
        return root / rows["source"].iloc[0], rows["frame"].astype(int).tolist()
    folder = tmp / video
    folder.mkdir()
    for f, src in zip(rows["frame"], rows["source"]):
        (folder / f"{int(f)}.jpg").symlink_to(root / src)
    return folder, rows["frame"].astype(int).tolist()


def test_predict_gives_evaluate_intensities_on_the_datasets_own_frames(dataset_run, tmp_path, monkeypatch):
    run, aus = dataset_run, dataset_run["aus"]
    pred = run["pred"]
    cols = [f"{a}_pred" for a in aus]
    assert pred[cols].to_numpy().std(axis=0).min() > 0.1, "the model predicts constants: a weak comparison"
    videos = sorted(pred["video"].unique())
    sources = {v: _source_of(run, v, tmp_path) for v in videos}
    out = tmp_path / "out"
    proc = run_fau("predict", *(str(src) for src, _ in sources.values()), "--model", str(run["model"]),
                   "--out", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    compared = 0
    for video, (source, frame_numbers) in sources.items():
        ours = pd.read_csv(out / f"{source.stem if source.is_file() else source.name}.csv")
        assert len(ours) == len(frame_numbers)
        ours.index = frame_numbers  # the dataset's frame numbers
        ev = pred[pred["video"] == video].set_index("frame")
        # the frames with a crop in the dataset are exactly those with success 1
        assert sorted(ours.index[ours["success"] == 1]) == sorted(ev.index)
        got = ours.loc[ev.index]
        diff = np.abs(got[[f"{a}_r" for a in sorted(aus)]].to_numpy() - ev[[f"{a}_pred" for a in sorted(aus)]].to_numpy())
        assert diff.max() <= TOL, (video, diff.max())
        print(f"{video}: {len(ev)} frames, max |predict - evaluate| {diff.max():.2g}")
        compared += len(ev)
    assert compared == len(pred)

    # The comparison sees a change as small as skipping the crop's JPEG round
    # trip (quality 95): the intensities then move by far more than TOL.
    import fau.predict as fp
    from fau.data import normalise
    from fau.media import open_input
    from fau.preprocess import face_crop, to_input

    def without_jpeg(image, pts, crops, size, norm, window):
        crop, m = face_crop(image, pts, crops)
        return normalise(to_input(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), size, window), norm), m

    monkeypatch.setattr(fp, "network_input", without_jpeg)
    video = videos[0]
    source = sources[video][0]
    fp.Predictor(run["model"], device="cpu").run(open_input(source), tmp_path / "nojpeg.csv", progress=False)
    alt = pd.read_csv(tmp_path / "nojpeg.csv")
    ev = pred[pred["video"] == video]
    alt = alt[alt["success"] == 1][[f"{a}_r" for a in sorted(aus)]].to_numpy()
    jpeg = np.abs(alt - ev[[f"{a}_pred" for a in sorted(aus)]].to_numpy())
    print(f"{video} without the crop's JPEG round trip: |predict - evaluate| max {jpeg.max():.3f}, "
          f"mean {jpeg.mean():.4f}")
    assert jpeg.max() > 10 * TOL


def test_several_faces_the_largest_is_face_0(model, shared, tmp_path):
    import dlib

    image = shared / "faces" / "multi_face.jpg"
    proc = run_fau("predict", str(image), "--model", str(model), "--out", str(tmp_path), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _, rows = raw_rows(tmp_path / "multi_face.csv")
    assert len(rows) == 1 and rows[0][1] == "0" and rows[0][4] == "1"
    faces = dlib.get_frontal_face_detector()(cv2.imread(str(image), cv2.IMREAD_GRAYSCALE), 1)
    assert len(faces) >= 2
    largest = max(faces, key=lambda d: d.area())
    xs, ys = np.array(rows[0][5:73], float), np.array(rows[0][73:141], float)
    cx, cy = np.median(xs), np.median(ys)
    assert largest.left() < cx < largest.right() and largest.top() < cy < largest.bottom() + largest.height() / 3


def test_flip_test_option_reads_the_face_and_its_mirror_image_or_only_the_face(model, shared, tmp_path):
    """`fau predict`'s default is the config's eval.flip_test (on): it
    equals `--flip-test`; `--no-flip-test` reads each face once, which gives
    other intensities; the header line on stderr says which ran."""
    import shutil

    from model_fixtures import make_annotation_set, spread_outputs

    spread = tmp_path / "model.pt"
    shutil.copy(model, spread)
    spread_outputs(spread, make_annotation_set(tmp_path / "data", frames=8, seed=3))  # not clipped at 0 or 5
    face = shared / "faces" / "obama.jpg"
    runs = {}
    for name, extra in (("default", []), ("on", ["--flip-test"]), ("off", ["--no-flip-test"])):
        proc = run_fau("predict", str(face), "--model", str(spread), "--out", str(tmp_path / name), *extra,
                       cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        header, rows = raw_rows(tmp_path / name / "obama.csv")
        assert len(rows) == 1 and rows[0][4] == "1"
        values = [float(v) for h, v in zip(header, rows[0]) if h.strip().endswith("_r")]
        runs[name] = (values, "; flip test" in proc.stderr)
    assert runs["default"] == runs["on"] and runs["on"][1] and not runs["off"][1]
    assert len(runs["on"][0]) == 3
    assert max(abs(a - b) for a, b in zip(runs["on"][0], runs["off"][0])) > 0.005, runs
