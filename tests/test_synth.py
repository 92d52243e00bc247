"""The synthetic datasets reproduce the official layouts file for file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

from fau.config import BP4D_AUS, DISFA_AUS, DatasetConfig, SynthConfig
from fau.synth.expressions import MIRROR, au_trajectories
from fau.synth import generate, load_truth, subject_ids
from fau.synth.warp import delaunay, warp_piecewise

from conftest import BP4D_SYNTH, DISFA_SYNTH


def _label_rows(path: Path) -> list[tuple[int, int]]:
    rows = []
    for line in path.read_text().splitlines():
        a, b = line.split(",")  # exactly two columns, no header (int() fails on a header)
        rows.append((int(a), int(b)))
    return rows


def test_bp4d_layout(bp4d):
    root = Path(bp4d.root)
    assert sorted(p.name for p in root.iterdir()) == [".synth", "2D+3D", "AUCoding", "F001", "M001"]
    nines = uncoded = 0
    for subject in ("F001", "M001"):
        assert sorted(p.name for p in (root / subject).iterdir()) == ["T1", "T2"]
        with zipfile.ZipFile(root / "2D+3D" / f"{subject}.zip") as zf:
            members = set(zf.namelist())
            for task in ("T1", "T2"):
                jpgs = sorted((root / subject / task).iterdir(), key=lambda p: int(p.stem))
                names = [p.name for p in jpgs]
                numbers = [int(p.stem) for p in jpgs]
                assert len(jpgs) == BP4D_SYNTH.frames
                assert names == [f"{n}.jpg" for n in numbers]  # not zero-padded
                assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
                img = cv2.imread(str(jpgs[0]))
                assert img.shape == (BP4D_SYNTH.height, BP4D_SYNTH.width, 3)
                for p in jpgs:  # zip entries <subject>/<task>/<frame>.jpg with the same bytes
                    assert zf.read(f"{subject}/{task}/{p.name}") == p.read_bytes()
                    members.discard(f"{subject}/{task}/{p.name}")
                coded = None
                for au in BP4D_AUS:
                    f = root / "AUCoding" / "AU_INT" / f"AU{au:02d}" / f"{subject}_{task}_AU{au:02d}.csv"
                    rows = _label_rows(f)
                    frames = [r[0] for r in rows]
                    assert coded is None or frames == coded
                    coded = frames
                    assert set(frames) <= set(numbers)
                    assert {r[1] for r in rows} <= {0, 1, 2, 3, 4, 5, 9}
                    nines += sum(r[1] == 9 for r in rows)
                uncoded += len(set(numbers) - set(coded))
            assert not members  # nothing else in the zip
    assert nines > 0 and uncoded > 0
    for au_dir in (root / "AUCoding" / "AU_INT").iterdir():
        assert au_dir.name in {f"AU{a:02d}" for a in BP4D_AUS}
        assert len(list(au_dir.iterdir())) == 4


def test_disfa_layout(disfa):
    root = Path(disfa.root)
    assert sorted(p.name for p in root.iterdir()) == [".synth", "ActionUnit_Labels", "Videos_LeftCamera"]
    videos = sorted(p.name for p in (root / "Videos_LeftCamera").iterdir())
    assert videos == ["LeftVideoSN001_comp.avi", "LeftVideoSN002_comp.avi"]
    for sn in ("SN001", "SN002"):
        cap = cv2.VideoCapture(str(root / "Videos_LeftCamera" / f"LeftVideo{sn}_comp.avi"))
        assert cap.isOpened()
        n = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            assert img.shape == (DISFA_SYNTH.height, DISFA_SYNTH.width, 3)
            n += 1
        assert n == DISFA_SYNTH.frames == int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        files = sorted(p.name for p in (root / "ActionUnit_Labels" / sn).iterdir())
        assert files == sorted(f"{sn}_au{a}.txt" for a in DISFA_AUS)
        for a in DISFA_AUS:
            rows = _label_rows(root / "ActionUnit_Labels" / sn / f"{sn}_au{a}.txt")
            assert [r[0] for r in rows] == list(range(1, DISFA_SYNTH.frames + 1))
            assert {r[1] for r in rows} <= set(range(6))


def test_disfa_mp4v_codec(tmp_path):
    ds = DatasetConfig(kind="disfa", root=str(tmp_path / "D"), aus=(12, 26))
    generate(ds, SynthConfig(subjects=1, frames=5, width=320, height=240, codec="mp4v"), seed=1)
    cap = cv2.VideoCapture(str(tmp_path / "D" / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3)


def test_subject_ids_like_the_real_ones():
    # BP4D: numbered per sex, the sex of each person's dominant photo (see fau.synth.faces.ORDER).
    assert subject_ids("bp4d", 8) == ["F001", "M001", "M002", "F002", "M003", "M004", "M005", "F003"]
    ids = subject_ids("disfa", 27)
    assert ids[:3] == ["SN001", "SN002", "SN003"] and ids[-1] == "SN032"
    assert not {"SN014", "SN015", "SN019", "SN020", "SN022"} & set(ids)


def test_same_seed_same_bytes(tmp_path):
    synth = SynthConfig(subjects=1, tasks=1, frames=4, width=320, height=400)
    files = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        ds = DatasetConfig(kind="bp4d", root=str(tmp_path / name), aus=BP4D_AUS)
        generate(ds, synth, seed=seed)
        files[name] = {p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                       for p in sorted((tmp_path / name).rglob("*")) if p.is_file() and p.suffix != ".json"}
    assert files["a"] == files["b"]
    assert files["a"] != files["c"]


def test_trajectories_spread_and_cooccurrence():
    rng = np.random.default_rng(0)
    aus = (1, 2, 4, 5, 6, 9, 10, 12, 14, 15, 17, 20, 25, 26)
    runs = [au_trajectories(rng, aus, 60, offset=3 * k) for k in range(24)]
    for t in runs:
        assert t.dtype.kind == "i" and t.min() >= 0 and t.max() <= 5
        assert (np.abs(np.diff(t, axis=0)) <= 2).mean() > 0.97  # smooth over time
        assert (t > 0).sum(axis=1).mean() < 7  # a few AUs at a time, not all of them
    allv = np.concatenate(runs)
    for j in range(len(aus)):
        assert len(np.unique(allv[:, j])) == 6  # every AU takes the whole 0..5 range
        assert (allv[:, j] >= 4).mean() > 0.02  # with a fair share of high values
    c = np.corrcoef(allv.T)
    i = {a: k for k, a in enumerate(aus)}
    assert c[i[6], i[12]] > 0.5 and c[i[25], i[26]] > 0.4 and c[i[1], i[2]] > 0.5
    assert abs(c[i[12], i[4]]) < c[i[6], i[12]] / 2  # unrelated AUs are not tied


def test_sidecar_ground_truth(disfa):
    truth = load_truth(Path(disfa.root), "SN001")
    assert truth["points"].shape == (DISFA_SYNTH.frames, 68, 2)
    assert truth["head"].shape == (DISFA_SYNTH.frames, 2, 3)
    assert list(truth["frames"]) == list(range(1, DISFA_SYNTH.frames + 1))
    labels = Path(disfa.root) / "ActionUnit_Labels" / "SN001" / "SN001_au12.txt"
    au12 = [int(line.split(",")[1]) for line in labels.read_text().splitlines()]
    assert au12 == truth["intensities"][:, list(truth["aus"]).index(12)].tolist()


def test_mirror_permutation_is_an_involution():
    assert sorted(MIRROR.tolist()) == list(range(68))
    assert (MIRROR[MIRROR] == np.arange(68)).all()
    assert MIRROR[36] == 45 and MIRROR[48] == 54 and MIRROR[8] == 8


def test_piecewise_warp_moves_points_to_targets():
    img = np.zeros((200, 200), np.uint8)
    cv2.circle(img, (100, 100), 4, 255, -1)
    src = np.array([[0, 0], [199, 0], [0, 199], [199, 199], [100, 100], [60, 100], [140, 100], [100, 60],
                    [100, 140]], float)
    dst = src.copy()
    dst[4] = [110, 92]  # move the centre point
    out = warp_piecewise(img, src, dst, delaunay(src, 200, 200))
    assert out[92, 110] == 255 and out[100, 100] == 0  # the dot moved with its landmark
    ys, xs = np.nonzero(out > 127)
    assert abs(xs.mean() - 110) < 2.0 and abs(ys.mean() - 92) < 2.0
    assert out[5, 5] == img[5, 5]
