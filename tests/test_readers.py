"""Frame tables from the raw layouts, and frame access (JPEG, zip, video)."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fau.datasets import read_frame_table
from fau.datasets.frames import iter_frames, read_ahead
from fau.errors import FauError

from conftest import DISFA_SYNTH


def _labels(root: Path, subject: str, task: str, au: int) -> dict[int, int]:
    f = root / "AUCoding" / "AU_INT" / f"AU{au:02d}" / f"{subject}_{task}_AU{au:02d}.csv"
    return {int(a): int(b) for a, b in (line.split(",") for line in f.read_text().splitlines())}


def test_bp4d_frame_table(bp4d):
    t = read_frame_table(bp4d)
    root = Path(bp4d.root)
    assert list(t.columns) == ["video", "subject", "task", "frame", "source", "index",
                               "AU06", "AU10", "AU12", "AU14", "AU17"]
    assert sorted(t["video"].unique()) == ["F001_T1", "F001_T2", "M001_T1", "M001_T2"]
    assert (t["index"] == -1).all()
    for (subject, task), rows in t.groupby(["subject", "task"]):
        lab = {au: _labels(root, subject, task, au) for au in bp4d.aus}
        assert rows["frame"].tolist() == sorted(lab[6])  # labels decide the frames; uncoded ones are absent
        for au in bp4d.aus:
            expect = [np.nan if lab[au][f] == 9 else lab[au][f] for f in rows["frame"]]
            np.testing.assert_array_equal(rows[f"AU{au:02d}"].to_numpy(), np.array(expect, float))
        assert all((root / s).is_file() for s in rows["source"])
    assert t[bp4d.au_names].isna().any().any()  # the 9 codes became NaN


def test_bp4d_zip_form_same_table_and_pixels(bp4d):
    folders = read_frame_table(bp4d)
    zipped = read_frame_table(dataclasses.replace(bp4d, frames_form="zip"))
    assert zipped["source"].iloc[0].startswith("2D+3D/F001.zip/F001/T1/")
    cols = ["video", "frame"] + bp4d.au_names
    assert folders[cols].equals(zipped[cols])
    a = list(iter_frames(bp4d.root, folders.head(3)))
    b = list(iter_frames(bp4d.root, zipped.head(3)))
    assert [f for f, _ in a] == [f for f, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert np.array_equal(x, y)


def test_bp4d_frame_step_and_subjects(bp4d):
    full = read_frame_table(bp4d)
    t = read_frame_table(dataclasses.replace(bp4d, frame_step=3, subjects=("M001",)))
    assert set(t["subject"]) == {"M001"}
    for video, rows in t.groupby("video"):
        assert rows["frame"].tolist() == full.loc[full["video"] == video, "frame"].tolist()[::3]


def test_bp4d_missing_jpeg_is_dropped_and_reported(bp4d, tmp_path, caplog):
    root = tmp_path / "BP4D"
    shutil.copytree(bp4d.root, root, ignore=shutil.ignore_patterns("2D+3D", ".synth"))
    ds = dataclasses.replace(bp4d, root=str(root))
    first = read_frame_table(ds).iloc[0]
    (root / first["source"]).unlink()
    with caplog.at_level(logging.WARNING):
        t = read_frame_table(ds)
    assert not ((t["video"] == first["video"]) & (t["frame"] == first["frame"])).any()
    assert "1 labelled frames have no image" in caplog.text


def test_bp4d_fera_folder_name_via_pattern(bp4d, tmp_path):
    root = tmp_path / "FERA"
    shutil.copytree(bp4d.root, root, ignore=shutil.ignore_patterns("2D+3D", ".synth"))
    (root / "AUCoding" / "AU_INT").rename(root / "AU Intensity Codes3.0")
    ds = dataclasses.replace(bp4d, root=str(root))
    with pytest.raises(FauError, match="no label files match pattern 'AUCoding/AU_INT/"):
        read_frame_table(ds)
    ds = dataclasses.replace(ds, patterns={"labels": "AU Intensity Codes3.0/AU{au:02d}/{subject}_{task}_AU{au:02d}.csv"})
    assert read_frame_table(ds)[["video", "frame"]].equals(read_frame_table(bp4d)[["video", "frame"]])


def test_disfa_frame_table(disfa):
    t = read_frame_table(disfa)
    assert sorted(t["video"].unique()) == ["SN001", "SN002"]
    assert (t["task"] == "").all()
    assert t.groupby("video").size().tolist() == [DISFA_SYNTH.frames] * 2
    assert (t["index"] == t["frame"] - 1).all()
    assert t["source"].iloc[0] == "Videos_LeftCamera/LeftVideoSN001_comp.avi"
    assert not t[disfa.au_names].isna().any().any()


def test_disfa_label_video_mismatch_uses_intersection(disfa, tmp_path, caplog):
    root = tmp_path / "DISFA"
    shutil.copytree(disfa.root, root, ignore=shutil.ignore_patterns(".synth"))
    for f in (root / "ActionUnit_Labels" / "SN001").iterdir():  # labels run 2 frames past the video
        f.write_text(f.read_text() + f"{DISFA_SYNTH.frames + 1},0\n{DISFA_SYNTH.frames + 2},1\n")
    with caplog.at_level(logging.WARNING):
        t = read_frame_table(dataclasses.replace(disfa, root=str(root)))
    assert t.loc[t["video"] == "SN001", "frame"].max() == DISFA_SYNTH.frames
    assert "2 labelled frames beyond its end are left out" in caplog.text


def test_video_frames_read_forward_only(disfa):
    t = read_frame_table(disfa)
    rows = t[t["video"] == "SN002"].iloc[[0, 3, 4, 10]]
    got = list(iter_frames(disfa.root, rows))
    cap = cv2.VideoCapture(str(Path(disfa.root) / rows["source"].iloc[0]))
    every = [cap.read()[1] for _ in range(DISFA_SYNTH.frames)]
    assert [f for f, _ in got] == rows["frame"].tolist()
    for (frame, img) in got:
        assert np.array_equal(img, every[frame - 1])


def _readers() -> list:
    return [c for c in multiprocessing.active_children() if c.name == "fau-frame-reader"]


@pytest.mark.parametrize("form", ["folders", "zip", "video"])
def test_read_ahead_gives_the_same_frames_in_order(form, bp4d, disfa):
    """Through the child process and its shared-memory ring (depth 2 < 12
    frames: every slot is reused), frame numbers and pixels as iter_frames."""
    ds = disfa if form == "video" else dataclasses.replace(bp4d, frames_form=form)
    rows = read_frame_table(ds)
    rows = rows[rows["video"] == rows["video"].iloc[0]]
    want = list(iter_frames(ds.root, rows, grey=True))
    got = [(f, img.copy()) for f, img in read_ahead(ds.root, rows, grey=True, depth=2)]
    assert [f for f, _ in got] == [f for f, _ in want] and len(got) == len(rows) >= 6
    for (_, x), (_, y) in zip(got, want):
        assert np.array_equal(x, y)
    assert not _readers()


def test_read_ahead_raises_a_bad_frame_at_its_place(bp4d, tmp_path):
    root = tmp_path / "BP4D"
    shutil.copytree(bp4d.root, root, ignore=shutil.ignore_patterns("2D+3D", ".synth"))
    ds = dataclasses.replace(bp4d, root=str(root))
    rows = read_frame_table(ds)
    rows = rows[rows["video"] == rows["video"].iloc[0]].reset_index(drop=True)
    victim = root / rows["source"].iloc[4]
    victim.write_bytes(b"")
    got = []
    with pytest.raises(FauError, match=f"{victim}: empty image file"):
        for frame, _ in read_ahead(ds.root, rows, depth=3):
            got.append(frame)
    assert got == rows["frame"].iloc[:4].tolist()
    assert not _readers()


def test_read_ahead_stopped_early_ends_its_reader(disfa):
    rows = read_frame_table(disfa)
    rows = rows[rows["video"] == "SN001"]
    frames = read_ahead(disfa.root, rows, depth=2)
    next(frames), next(frames)
    assert len(_readers()) == 1
    frames.close()
    assert not _readers()
