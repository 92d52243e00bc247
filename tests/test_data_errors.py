"""Bad input through the `fau` CLI: one line on stderr naming the file, a
non-zero exit, and nothing already written is lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run_fau


def _args(root: Path, kind: str) -> list[str]:
    aus = "[6,10,12,14,17]" if kind == "bp4d" else "[1,2,4,5,6,9,12,15,17,20,25,26]"
    return ["--set", f"dataset.root={root}", "--set", f"dataset.kind={kind}", "--set", f"dataset.aus={aus}"]


def _one_error_line(proc, *needles: str) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def bp4d_copy(bp4d, tmp_path):
    root = tmp_path / "BP4D"
    shutil.copytree(bp4d.root, root, ignore=shutil.ignore_patterns("2D+3D", ".synth", "*T2*"))
    return root


def test_missing_label_file(bp4d_copy, tmp_path):
    victim = bp4d_copy / "AUCoding" / "AU_INT" / "AU14" / "M001_T1_AU14.csv"
    victim.unlink()
    index = tmp_path / "res" / "frames.csv"
    proc = run_fau("index", *_args(bp4d_copy, "bp4d"), "--out", str(index), cwd=tmp_path)
    _one_error_line(proc, str(victim), "missing")
    assert not index.exists()


def test_garbage_row_in_label_file(bp4d_copy, tmp_path):
    victim = bp4d_copy / "AUCoding" / "AU_INT" / "AU12" / "F001_T1_AU12.csv"
    lines = victim.read_text().splitlines()
    lines[2] = "abc;;x"
    victim.write_text("\n".join(lines) + "\n")
    args = _args(bp4d_copy, "bp4d")
    index = tmp_path / "res" / "frames.csv"
    index.parent.mkdir(parents=True)
    index.write_text("old content\n")
    proc = run_fau("index", *args, "--out", str(index), cwd=tmp_path)
    _one_error_line(proc, str(victim), "line 3")
    assert index.read_text() == "old content\n"  # an earlier output is left intact


def test_zero_byte_jpeg_keeps_existing_landmarks(bp4d_copy, tmp_path):
    args = _args(bp4d_copy, "bp4d")
    index, out = tmp_path / "frames.csv", tmp_path / "landmarks" / "F001_T1.csv"
    assert run_fau("index", *args, "--out", str(index), cwd=tmp_path).returncode == 0
    lm_args = ["--frames", str(index), "--video", "F001_T1", "--out", str(out)]
    proc = run_fau("landmarks", *args, *lm_args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    before = out.read_bytes()
    frames = sorted((bp4d_copy / "F001" / "T1").iterdir(), key=lambda p: int(p.stem))
    coded = {int(ln.split(",")[0]) for ln in
             (bp4d_copy / "AUCoding" / "AU_INT" / "AU06" / "F001_T1_AU06.csv").read_text().splitlines()}
    victim = next(p for p in frames if int(p.stem) in coded)
    victim.write_bytes(b"")
    proc = run_fau("landmarks", *args, *lm_args, cwd=tmp_path)
    _one_error_line(proc, str(victim), "empty")
    assert out.read_bytes() == before


def test_corrupt_video_keeps_existing_landmarks(disfa, tmp_path):
    root = tmp_path / "DISFA"
    shutil.copytree(disfa.root, root, ignore=shutil.ignore_patterns(".synth", "*SN002*"))
    args = _args(root, "disfa")
    index, out = tmp_path / "frames.csv", tmp_path / "landmarks" / "SN001.csv"
    assert run_fau("index", *args, "--out", str(index), cwd=tmp_path).returncode == 0
    out.parent.mkdir(parents=True)
    out.write_text("frame,success\n1,1\n")
    victim = root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"
    victim.write_bytes(b"this is not a video" * 100)
    proc = run_fau("landmarks", *args, "--frames", str(index), "--video", "SN001", "--out", str(out), cwd=tmp_path)
    _one_error_line(proc, str(victim), "unreadable video")
    assert out.read_text() == "frame,success\n1,1\n"
    proc = run_fau("index", *args, "--out", str(index), cwd=tmp_path)  # the reader says the same
    _one_error_line(proc, str(victim), "unreadable video")


def test_no_videos_match_the_pattern(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_fau("index", *_args(tmp_path / "empty", "disfa"), "--out", "frames.csv", cwd=tmp_path)
    _one_error_line(proc, "Videos_LeftCamera/LeftVideo{subject}_comp.avi", str(tmp_path / "empty"))


def test_full_chain_through_the_cli(bp4d_copy, tmp_path):
    """Every output where the command line says (no results layout in the
    library): index -> landmarks -> crops -> annotations -> folds."""
    import json

    args = _args(bp4d_copy, "bp4d")
    here = tmp_path / "anywhere"
    frames, videos = here / "table.csv", here / "ids.txt"
    assert run_fau("index", *args, "--out", str(frames), "--videos", str(videos), cwd=tmp_path).returncode == 0
    assert videos.read_text().split() == ["F001_T1", "M001_T1"]
    tables = []
    for v in ["F001_T1", "M001_T1"]:
        lm = here / "lm" / f"{v}.csv"
        proc = run_fau("landmarks", *args, "--frames", str(frames), "--video", v, "--out", str(lm), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        table = here / "crop-tables" / f"{v}.csv"
        proc = run_fau("crops", *args, "--frames", str(frames), "--landmarks", str(lm), "--video", v,
                       "--out", str(table), "--images", str(here / "images" / v), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert len(list((here / "images" / v).glob("*.jpg"))) > 0
        tables.append(str(table))
    ann, ann_json = here / "ann" / "table.csv", here / "json" / "ann.json"
    proc = run_fau("annotations", *args, *tables, "--out", str(ann), "--json", str(ann_json), "--frames", str(frames),
                   cwd=tmp_path)
    assert proc.returncode == 0 and "in the JSON" in proc.stdout, proc.stderr
    import pandas as pd

    rows = pd.read_csv(ann)
    assert all((ann.parent / p).is_file() for p in rows["imgpath"])  # relative to the table's folder
    assert all((ann_json.parent / e["imgpath"]).is_file() for e in json.loads(ann_json.read_text()))
    folds = here / "f.json"
    proc = run_fau("folds", *args, "--set", "folds.k=2", "--annotations", str(ann), "--out", str(folds),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(s for f in json.loads(folds.read_text()) for s in f["test"]) == ["F001", "M001"]
