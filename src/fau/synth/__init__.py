"""The synthetic dataset generator: real face photos, neutralised and morphed
into distinct people, animated by AU-driven landmark warps, written in the
official BP4D or DISFA layout (`generate`); ground truth for tests
(`load_truth`)."""

from .generate import SIDECAR, generate, load_truth, subject_ids

__all__ = ["SIDECAR", "generate", "load_truth", "subject_ids"]
