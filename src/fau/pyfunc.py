"""The MLflow pyfunc of a trained model: aligned face crops -> AU intensities.

Input: a uint8 array (N, C, C, 3), RGB, C = the model's `crops.size`: crops
as the crops stage writes them (`fau.preprocess.face_crop` of a frame and
its 68 landmarks, stored as JPEG) and as they are read back. Output: a
DataFrame with one column `AUxx_r` per AU (sorted), one row per crop, the
intensities `fau evaluate` gives for those crops. The weights and the
preprocessing record travel as the artefact `model.pt` (the file `fau
predict` reads; `fau.registry.resolved_model`).

This module imports nothing of MLflow at import time and little of fau, so
the logged model loads with the fau package on the path (the model carries
a copy of it, `code_paths`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

try:  # the base class; absent only where MLflow is not installed
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object


def crops_to_intensities(net, meta: dict, crops: np.ndarray, batch_size: int = 32, flip_test: bool = True
                         ) -> pd.DataFrame:
    """(N, C, C, 3) uint8 RGB crops -> DataFrame of `AUxx_r` (sorted AUs);
    flip_test as `eval.flip_test` (`fau.inference.intensities`)."""
    import torch

    from .data import normalise
    from .inference import input_window, intensities
    from .preprocess import to_input

    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected aligned RGB crops (N, C, C, 3), got shape {crops.shape}")
    aus = list(meta["aus"])
    size = int(meta["model_config"]["input_size"])
    norm = meta.get("normalization", "imagenet")
    window = input_window(meta)
    device = next(net.parameters()).device
    out = np.zeros((len(crops), len(aus)))
    for i in range(0, len(crops), batch_size):
        x = np.stack([normalise(to_input(c.astype(np.uint8), size, window), norm)
                      for c in crops[i:i + batch_size]])  # (b, 3, S, S)
        out[i:i + len(x)] = intensities(net, torch.from_numpy(x).to(device), flip_test)[0]  # (b, A)
    order = sorted(range(len(aus)), key=lambda a: aus[a])
    return pd.DataFrame({f"{aus[a]}_r": out[:, a] for a in order})


class FauPyfunc(PythonModel):
    """mlflow.pyfunc model: `predict(crops)` -> AU intensities."""

    def load_context(self, context) -> None:
        from .inference import load_model

        self.net, self.meta = load_model(context.artifacts["model"], "cpu")
        # logged with the config's eval.flip_test (`fau.registry.log_and_register`); a model
        # logged before the flip test existed has no model_config and was verified without it
        self.flip_test = bool((context.model_config or {}).get("flip_test", False))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        if isinstance(model_input, dict) and len(model_input) == 1:  # a named tensor
            model_input = next(iter(model_input.values()))
        return crops_to_intensities(self.net, self.meta, np.asarray(model_input), flip_test=self.flip_test)
