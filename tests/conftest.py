"""Shared fixtures: tiny synthetic BP4D and DISFA datasets (session-scoped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fau.config import BP4D_AUS, DISFA_AUS, DatasetConfig, LandmarksConfig, SynthConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

BP4D_SYNTH = SynthConfig(subjects=2, tasks=2, frames=12, width=520, height=696, zip=True,
                         coded_fraction=0.75, nine_fraction=0.1)
DISFA_SYNTH = SynthConfig(subjects=2, tasks=1, frames=12, width=512, height=384, codec="MJPG")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (reference material) is not available")
    return SHARED


@pytest.fixture(scope="session")
def bp4d(tmp_path_factory) -> DatasetConfig:
    """2 subjects x 2 tasks x 12 frames, 520 x 696, folders + zip form."""
    from fau.synth import generate

    root = tmp_path_factory.mktemp("synth") / "BP4D"
    ds = DatasetConfig(name="t_bp4d", kind="bp4d", root=str(root), aus=BP4D_AUS)
    generate(ds, BP4D_SYNTH, seed=0)
    return ds


@pytest.fixture(scope="session")
def disfa(tmp_path_factory) -> DatasetConfig:
    """2 subjects x 12 frames, 512 x 384 MJPG videos."""
    from fau.synth import generate

    root = tmp_path_factory.mktemp("synth") / "DISFA"
    ds = DatasetConfig(name="t_disfa", kind="disfa", root=str(root), aus=DISFA_AUS)
    generate(ds, DISFA_SYNTH, seed=0)
    return ds


@pytest.fixture(scope="session")
def detector():
    from fau.landmarks import LandmarkDetector

    return LandmarkDetector(LandmarksConfig())


def run_fau(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the `fau` CLI in a subprocess (as a user would)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "fau.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
