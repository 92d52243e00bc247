"""Trained models in MLflow: log as an MLflow model, register, resolve URIs.

`log_and_register` logs a `model.pt` as an MLflow pyfunc model (aligned
crops -> AU intensities, `fau.pyfunc`; signature, an input example taken
from the training crops, the pinned requirements, a copy of the fau package
and `model.pt` itself as artefact, its metadata in the MLmodel file) to a
run and registers it in the Model Registry. `resolved_model` turns what a
user passes as `--model` (a path, `models:/<name>/<version>`,
`models:/<name>@<alias>`, `runs:/<run id>/model`) into a local `model.pt`.

MLflow's model logging API is the fluent one; it is used only inside
`_tracking(uri)`, which sets the tracking and registry URI for the call and
restores them after (no MLflow state outlives a call).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from . import atomic
from .errors import FauError

MODEL_FILE = "model.pt"
URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_mlflow_uri(model: str) -> bool:
    return str(model).startswith(URI_SCHEMES)


def _check_store(uri: str) -> str:
    """A local SQLite store must exist (MLflow would create an empty one)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix):])
        if not path.is_file():
            raise FauError(f"MLflow store {path} does not exist (give --tracking-uri, or set "
                           "MLFLOW_TRACKING_URI, to where the model is registered)")
        return prefix + str(path.resolve())
    return uri


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def find_model_file(folder: Path, where: str) -> Path:
    """`model.pt` inside downloaded artefacts: the pyfunc's `model` artefact
    (MLmodel), else the only `model.pt` below the folder."""
    folder = Path(folder)
    if folder.is_file():
        return folder
    mlmodel = folder / "MLmodel"
    if mlmodel.is_file():
        import yaml

        spec = yaml.safe_load(mlmodel.read_text()) or {}
        rel = (((spec.get("flavors") or {}).get("python_function") or {}).get("artifacts") or {}).get("model", {})
        if isinstance(rel, dict) and rel.get("path") and (folder / rel["path"]).is_file():
            return folder / rel["path"]
    found = sorted(folder.rglob(MODEL_FILE))
    if len(found) != 1:
        raise FauError(f"{where}: expected one {MODEL_FILE} among its artefacts, found {len(found)}")
    return found[0]


@contextlib.contextmanager
def resolved_model(model: str | Path, tracking_uri: Optional[str] = None) -> Iterator[Path]:
    """A local model.pt for `model`: a path as is, an MLflow URI downloaded
    into a temp folder (removed afterwards)."""
    if not is_mlflow_uri(str(model)):
        yield Path(model)
        return
    import mlflow.artifacts

    uri = _check_store(tracking_uri or "")
    with tempfile.TemporaryDirectory(prefix="fau-model-") as tmp:
        try:
            # models:/ is resolved through the global registry URI, whatever is passed: set it for the call
            with _tracking(uri) if uri else contextlib.nullcontext(), _no_progress_bar():
                local = mlflow.artifacts.download_artifacts(artifact_uri=str(model), dst_path=tmp,
                                                            tracking_uri=uri or None, registry_uri=uri or None)
        except Exception as e:  # MlflowException, connection errors: one line
            raise FauError(f"{model}: not found at MLflow {uri or '(default URI)'} ({_first_line(e)})") from None
        yield find_model_file(Path(local), str(model))


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow's per-file download bar off for the block (one line per file on a log)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    prev = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if prev is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = prev


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """Set MLflow's tracking + registry URI for the block; restore after."""
    import mlflow
    from mlflow.tracking import _tracking_service
    from mlflow.tracking._model_registry import utils as registry_utils

    prev_t = _tracking_service.utils._tracking_uri
    prev_r = registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        _tracking_service.utils._tracking_uri = prev_t
        registry_utils._registry_uri = prev_r


def requirements() -> list[str]:
    """Pinned pip requirements of the pyfunc (what `fau.pyfunc` imports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("torch", "numpy", "pandas", "opencv-python-headless", "pyyaml", "tqdm", "mlflow"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def _package_copy(dest: Path) -> Path:
    """A copy of the fau package (code only) for the model's `code_paths`."""
    import fau

    src = Path(fau.__file__).parent
    target = dest / "fau"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "assets", "*.pyc"))
    return target


def log_and_register(model_pt: str | Path, tracking_uri: str, run_id: str, registered_name: Optional[str],
                     example_crops: np.ndarray, out_json: Optional[str | Path] = None,
                     description: str = "", flip_test: bool = True) -> dict:
    """Log `model_pt` as the MLflow model `model` of run `run_id` and
    register it as `registered_name` (None: log only). `example_crops`
    (n, C, C, 3) uint8 RGB aligned crops become the input example;
    `flip_test` (the config's eval.flip_test) travels as the pyfunc's
    model_config, so the model gives evaluation's intensities.

    Returns (and writes to `out_json`) {"name", "version", "model_uri",
    "run_id", "model_id", "tracking_uri", "logged_model_uri"}. After
    registering, the model is loaded back through its `models:/` URI and
    must reproduce `fau.pyfunc.crops_to_intensities` on the example."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    from .inference import load_model
    from .pyfunc import FauPyfunc, crops_to_intensities

    model_pt = Path(model_pt)
    net, meta = load_model(model_pt, "cpu")
    aus = sorted(meta["aus"])
    crop = int((meta.get("preprocessing") or {}).get("crops", {}).get("size", 0))
    if not crop:
        raise FauError(f"{model_pt}: records no preprocessing (crops.size); train it again")
    example = np.ascontiguousarray(np.asarray(example_crops, np.uint8))
    if example.ndim != 4 or example.shape[1:] != (crop, crop, 3):
        raise FauError(f"input example: expected crops of shape (n, {crop}, {crop}, 3), got {example.shape}")
    expected = crops_to_intensities(net, meta, example, flip_test=flip_test)
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, crop, crop, 3))]),
                               outputs=Schema([ColSpec("double", f"{a}_r") for a in aus]))
    fau_meta = {"aus": list(meta["aus"]), "model_config": meta["model_config"],
                "normalization": meta.get("normalization"), "preprocessing": meta["preprocessing"],
                "epochs": meta.get("epochs"), "n_train": meta.get("n_train"),
                "input": f"aligned crops (n, {crop}, {crop}, 3) uint8 RGB, as the crops stage writes them",
                "output": "AU intensities 0..5, one column AUxx_r per AU"}
    uri = tracking_uri
    try:
        with tempfile.TemporaryDirectory(prefix="fau-log-") as tmp, _tracking(uri):
            code = _package_copy(Path(tmp))
            with mlflow.start_run(run_id=run_id, log_system_metrics=False):
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=FauPyfunc(), artifacts={"model": str(model_pt)},
                    model_config={"flip_test": bool(flip_test)},
                    code_paths=[str(code)], signature=signature, input_example=example,
                    pip_requirements=requirements(), metadata={"fau": fau_meta},
                    registered_model_name=registered_name, await_registration_for=300,
                    tags={"fau.role": "final"})
            result = {"name": registered_name, "version": None, "model_uri": info.model_uri, "run_id": run_id,
                      "model_id": info.model_id, "tracking_uri": uri, "logged_model_uri": info.model_uri}
            if registered_name:
                version = info.registered_model_version
                client = mlflow.MlflowClient(uri, registry_uri=uri)
                if description:
                    client.update_model_version(registered_name, str(version), description)
                result.update(version=int(version), model_uri=f"models:/{registered_name}/{version}")
            loaded = mlflow.pyfunc.load_model(result["model_uri"])
            got = loaded.predict(example)
    except FauError:
        raise
    except Exception as e:
        raise FauError(f"MLflow {uri}: cannot log / register {model_pt} ({type(e).__name__}: {_first_line(e)})"
                       ) from None
    if not np.allclose(got[expected.columns].to_numpy(float), expected.to_numpy(float), atol=1e-5):
        raise FauError(f"{result['model_uri']}: the logged model does not reproduce {model_pt} on the input example")
    if out_json is not None:
        atomic.write_text(out_json, json.dumps(result, indent=2) + "\n")
    return result
