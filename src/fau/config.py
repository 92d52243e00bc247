"""Typed configuration: `config/*.yaml` -> frozen dataclasses.

Every section has defaults here; a YAML file overrides them key by key. The
mapping is checked once, against the JSON schema shipped with the package
(`fau/schemas/config.schema.yaml`, also `workflow/schemas/`): types, enums,
ranges and unknown keys. A violation raises `FauError` naming the key
(`config key 'train.epochs' is 0; must be >= 1`), so a typo stops a run
before any work, in Snakemake and in the `fau` command alike. There is no
global config object: code receives the section it needs.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import FauError

BP4D_AUS = (6, 10, 12, 14, 17)
DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)

# Default path patterns of the official layouts (docs/formats.md).
DEFAULT_PATTERNS = {
    "bp4d": {
        "frames": "{subject}/{task}/{frame}.jpg",
        "zip": "2D+3D/{subject}.zip",
        "zip_member": "{subject}/{task}/{frame}.jpg",
        "labels": "AUCoding/AU_INT/AU{au:02d}/{subject}_{task}_AU{au:02d}.csv",
    },
    "disfa": {
        "video": "Videos_LeftCamera/LeftVideo{subject}_comp.avi",
        "labels": "ActionUnit_Labels/{subject}/{subject}_au{au}.txt",
    },
}


def au_name(au: int) -> str:
    """6 -> 'AU06' (the column name used in every table)."""
    return f"AU{int(au):02d}"


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "synth_bp4d"  # results/<name>/...
    kind: str = "bp4d"  # "bp4d" | "disfa"
    root: str = "data/synth/BP4D"
    aus: tuple[int, ...] = BP4D_AUS
    frames_form: str = "folders"  # bp4d: "folders" | "zip"
    patterns: dict = field(default_factory=dict)  # overrides of DEFAULT_PATTERNS[kind]
    frame_step: int = 1  # keep every n-th labelled frame (DISFA has 4845 per video)
    subjects: Optional[tuple[str, ...]] = None  # restrict to these subjects (None: all found)

    def pattern(self, key: str) -> str:
        merged = {**DEFAULT_PATTERNS.get(self.kind, {}), **self.patterns}
        if key not in merged:
            raise FauError(f"config key 'dataset.patterns.{key}' is not set for kind '{self.kind}'")
        return merged[key]

    @property
    def au_names(self) -> list[str]:
        return [au_name(a) for a in self.aus]


@dataclass(frozen=True)
class SynthConfig:
    enabled: bool = True
    seed: Optional[int] = None  # the people and their videos; None: the run's seed (Config.seed)
    subjects: int = 6
    tasks: int = 2  # BP4D tasks per subject (T1..Tn); DISFA: one video per subject
    frames: int = 60  # frames per task / video
    width: int = 1040  # BP4D 1040 x 1392 (w x h), DISFA 1024 x 768
    height: int = 1392
    coded_fraction: float = 0.85  # BP4D: share of each task inside the coded window
    nine_fraction: float = 0.03  # BP4D: share of coded frames with a "9" for one AU
    zip: bool = False  # BP4D: also write the 2D+3D/<subject>.zip form
    fps: float = 20.0
    codec: str = "MJPG"  # DISFA video codec: "MJPG" or "mp4v"
    jpeg_quality: int = 90
    other_aus: bool = False  # unlabelled AUs (brows, lids, lip press: synth.expressions.OTHER_AUS) move too


@dataclass(frozen=True)
class LandmarksConfig:
    detect_width: int = 320  # detection runs on a grey copy this wide
    upsample: int = 0  # HOG detector pyramid upsampling
    track: bool = True  # follow the face from frame to frame (else: full detection on every frame)
    redetect_every: int = 5  # tracking: HOG detection on every n-th frame (1: every frame)
    max_motion: float = 0.2  # tracking: re-detect when the points move more (x face size) in a frame
    track_min_overlap: float = 0.5  # box IoU between landmark hull and box
    read_ahead: int = 16  # frames decoded ahead in a child process (0: none)
    min_face_fraction: float = 0.02  # smallest face (box width / frame width) accepted
    predictor: Optional[str] = None  # 68-point model file; None: face_recognition_models' copy


@dataclass(frozen=True)
class CropsConfig:
    size: int = 256
    jpeg_quality: int = 95
    alignment: str = "rigid"  # "rigid" (rigid landmarks onto a neutral face) | "eyes_mouth" (template below)
    # eyes_mouth: where the eye centres and the mouth centre go, in a 256 x 256
    # crop (scaled with size).
    template: dict = field(
        default_factory=lambda: {"left_eye": [86.0, 100.0], "right_eye": [170.0, 100.0], "mouth": [128.0, 178.0]}
    )
    au_points: dict = field(default_factory=dict)  # AU -> two point specs; {} = fau.au_locations' table


@dataclass(frozen=True)
class FoldsConfig:
    k: int = 3  # k folds over sorted subject IDs (used when parts/explicit are empty)
    parts: tuple[tuple[str, ...], ...] = ()  # fold i tests parts[i], trains on the rest
    explicit: tuple[dict, ...] = ()  # [{name, train: [...], test: [...]}]
    group_by: str = "subject"  # "subject" | "person": synthetic subjects whose dominant photo shows one person stay together


@dataclass(frozen=True)
class SCCConfig:
    enabled: bool = True
    k: int = 7
    impl: str = "factorised"  # "factorised" | "literal"
    layout: str = "paper"  # "paper" (channels are nodes) | "released" (authors' NHWC reshape)


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet50"  # "resnet50" | "resnet18"
    backbone_weights: Optional[str] = None  # torchvision-layout state dict file
    input_size: int = 256
    input_window: float = 1.0  # share of the crop the network sees (fau.preprocess.input_box); 1: all of it
    width: int = 64  # backbone's first-stage channels (ResNet: 64; smaller for small CPU runs)
    head_channels: tuple[int, ...] = (256, 128, 64)
    bn_momentum: float = 0.01  # TF decay 0.99
    sigma: float = 2.0
    output_scale: float = 1.0  # constant factor on the final 1x1 conv's output (1: the paper)
    scc: SCCConfig = field(default_factory=SCCConfig)


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes of each training crop (none in the paper)."""

    enabled: bool = False
    flip: bool = True  # horizontal flip (AU point pairs swapped)
    scale: float = 0.05  # +- relative
    rotate: float = 5.0  # +- degrees
    shift: float = 0.03  # +- fraction of the input size
    brightness: float = 0.2  # +- relative
    contrast: float = 0.2  # +- relative
    saturation: float = 0.2  # +- relative


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 16
    lr: float = 5e-4
    lr_milestones: tuple[int, ...] = (5, 10)
    lr_gamma: float = 0.1
    weight_decay: float = 1e-5
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    bf16: bool = False  # bf16 autocast on CUDA
    workers: Optional[int] = None  # DataLoader workers; None: from the job's threads
    normalization: str = "imagenet"  # "imagenet" | "tf_mean" | "per_crop" (fau.data.normalise)
    max_train_frames: Optional[int] = None  # cap per fold (deterministic subsample)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 32
    # Flip test (as Simple Baselines tests): an AU's intensity is the mean of
    # the crop's and of its mirror image's. Evaluation, `fau predict` and the
    # registered MLflow model all read it, so they give the same intensities.
    flip_test: bool = True


@dataclass(frozen=True)
class MlflowConfig:
    enabled: bool = True
    uri: str = "sqlite:///results/mlflow.db"
    experiment: str = "fau"
    system_metrics: bool = True  # CPU / memory / GPU of training runs (MLflow's; needs psutil, GPU: nvidia-ml-py)
    system_metrics_interval: float = 10.0  # seconds between samples


@dataclass(frozen=True)
class ResourcesConfig:
    gpu: int = 0  # GPUs per training / evaluation job (Slurm: --gpus)
    gpu_model: Optional[str] = None
    gres: Optional[str] = None  # e.g. "gpu:1" (alternative to gpu/gpu_model)
    train_runtime: int = 240  # minutes
    train_mem_mb: int = 16000
    train_threads: int = 2
    prep_mem_mb: int = 2000
    prep_runtime: int = 60


@dataclass(frozen=True)
class ReportConfig:
    sequences: int = 3  # test sequences plotted over time
    heatmap_examples: int = 4  # test crops with predicted heatmaps overlaid


@dataclass(frozen=True)
class FinalConfig:
    """The final model (rule train_final, target `final`)."""

    enabled: bool = False  # the default target also trains + registers it (and writes report_final.md)
    registered_model: Optional[str] = None  # MLflow Model Registry name; None: fau-<dataset.name>


@dataclass(frozen=True)
class PredictConfig:
    """`fau predict` as a workflow (target `predict`, one job per input)."""

    input: Optional[str] = None  # glob of videos, images or image folders
    model: Optional[str] = None  # model.pt or models:/<name>/<version>; None: this config's final model
    overlay: bool = False  # also <results>/predict/overlays/<name>/ (video with landmarks, AU bars, heatmaps)
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    precision: str = "auto"  # "auto" (fp32) | "fp32" | "bf16" (CUDA autocast)
    batch_size: Optional[int] = None  # None: 16 on CPU, 64 on CUDA
    fps: Optional[float] = None  # timestamps' frame rate; None: the video's (image folders: 30)


@dataclass(frozen=True)
class AblationConfig:
    """`snakemake ablation`: each variant (overrides of the model / train
    sections) trained and tested on the same folds with the same seed."""

    variants: dict = field(default_factory=lambda: {"no_scc": {"model": {"scc": {"enabled": False}}}})


@dataclass(frozen=True)
class Config:
    seed: int = 0
    results: str = "results"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    landmarks: LandmarksConfig = field(default_factory=LandmarksConfig)
    crops: CropsConfig = field(default_factory=CropsConfig)
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)

    @property
    def people_seed(self) -> int:
        """The synthetic people's seed: synth.seed, else the run's seed."""
        return self.synth.seed if self.synth.seed is not None else self.seed

    def to_dict(self) -> dict:
        return to_plain(self)


# ---------------------------------------------------------------- conversion


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples -> dicts/lists (JSON- and YAML-safe)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    return obj


def _convert(value: Any, tp: Any) -> Any:
    """A schema-valid plain value -> the dataclass field's type (lists ->
    tuples, ints -> floats, mappings -> nested dataclasses)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _convert(value, next(a for a in args if a is not type(None)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value)
    if origin is tuple:
        elem = args[0] if args else Any
        return tuple(_convert(v, elem) for v in value)
    if tp is dict or origin is dict:
        return dict(value)
    if tp is float:
        return float(value)
    if tp is int:
        return int(value)
    return value


def _build(cls: type, data: dict) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{k: _convert(v, hints[k]) for k, v in data.items()})


SCHEMA_FILE = "schemas/config.schema.yaml"


@functools.cache
def schema() -> dict:
    """The config's JSON schema (package data of `fau`)."""
    return yaml.safe_load(resources.files("fau").joinpath(SCHEMA_FILE).read_text())


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "object": "a mapping", "array": "a list", "null": "null"}


def _type_words(types_: str | list) -> str:
    types_ = [types_] if isinstance(types_, str) else list(types_)
    return " or ".join(_TYPE_WORDS.get(t, t) for t in types_)


def schema_error_message(err) -> str:
    """A jsonschema ValidationError -> one line naming the config key."""
    key, v, val, inst = _key(err.absolute_path), err.validator, err.validator_value, err.instance
    where = f"config key '{key}'" if key else "the config"
    if v == "additionalProperties" and isinstance(inst, dict):
        known = list(err.schema.get("properties", {}))
        extra = next(k for k in inst if k not in known)
        full = f"{key}.{extra}" if key else str(extra)
        close = difflib.get_close_matches(str(extra), known, n=1)
        hint = f" (did you mean '{key + '.' if key else ''}{close[0]}'?)" if close else ""
        return f"config key '{full}' is not known{hint}"
    if v == "type":
        return f"{where} must be {_type_words(val)}, got {inst!r}"
    if v == "enum":
        return f"{where} is {inst!r}; expected one of {', '.join(map(str, val))}"
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if v in bounds:
        return f"{where} is {inst!r}; must be {bounds[v]} {val}"
    if v == "multipleOf":
        return f"{where} is {inst!r}; must be a multiple of {val}"
    if v in ("minItems", "maxItems"):
        n = "at least" if v == "minItems" else "at most"
        return f"{where} has {len(inst)} items; must have {n} {val}"
    if v == "pattern":
        return f"{where} is {inst!r}; must match {val}"
    if v == "required":
        missing = [k for k in val if k not in inst]
        return f"{where} needs the key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return f"{where}: {err.message}"


def validate(data: dict) -> None:
    """Check a plain config mapping against the schema; FauError naming the
    offending key (an unknown key first, else the first in key order)."""
    from jsonschema import Draft202012Validator

    errors = list(Draft202012Validator(schema()).iter_errors(data))
    if errors:
        # Unknown keys first (the commonest mistake), then the first in document order.
        first = min(errors, key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FauError(schema_error_message(first) + more)


def _takes_string(prop: dict) -> bool:
    """Whether a schema property may hold a string (no `type`: enum, anyOf: yes)."""
    kind = prop.get("type")
    return kind is None or kind == "string" or (isinstance(kind, list) and "string" in kind)


def _reread(value, prop: dict):
    """A value of a nested Snakemake --config override, its string leaves read
    again as YAML where the schema property `prop` takes no string."""
    if isinstance(value, dict):
        props = prop.get("properties", {})
        return {k: _reread(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list):
        return [_reread(v, prop.get("items", {})) for v in value]
    if isinstance(value, str) and not _takes_string(prop):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # the schema check names the key
    return value


def reread_overrides(config: dict, overrides: dict) -> dict:
    """Snakemake reads a nested `--config` value (`synth={seed: 0}`) with
    YAML's BaseLoader, so each of its leaves is a string ('0'), which the
    schema would refuse. `config` (Snakemake's, the overrides merged in) with
    those leaves read again as YAML wherever the schema takes no string
    there; top-level values (`seed=1`) Snakemake already reads as numbers."""
    props = schema().get("properties", {})
    nested = {k: _reread(v, props.get(k, {})) for k, v in overrides.items() if isinstance(v, (dict, list))}
    return deep_merge(config, nested)


def from_dict(data: Optional[dict]) -> Config:
    """Check a plain mapping (YAML, Snakemake's `config`) against the schema
    and build the typed Config from it."""
    data = dict(data or {})
    validate(data)
    return _build(Config, data)


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FauError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FauError(f"{path}: not valid YAML/JSON ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FauError(f"{path}: a config file must hold a mapping at the top level")
    return data


def parse_override(item: str) -> dict:
    """'train.epochs=3' -> {'train': {'epochs': 3}} (value parsed as YAML)."""
    if "=" not in item:
        raise FauError(f"override '{item}' must look like key.sub=value")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict = {}
    cur = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def load_config(paths: Optional[list] = None, overrides: Optional[list[str]] = None,
                inline: Optional[str] = None) -> Config:
    """Merge YAML files (later wins), an inline JSON mapping and `key=value`
    overrides (in that order) into a Config."""
    data: dict = {}
    for p in paths or []:
        data = deep_merge(data, load_yaml(p))
    if inline:
        try:
            extra = json.loads(inline)
        except json.JSONDecodeError as e:
            raise FauError(f"--config-json: not valid JSON ({e.msg} at char {e.pos})") from None
        if not isinstance(extra, dict):
            raise FauError("--config-json: must be a JSON mapping")
        data = deep_merge(data, extra)
    for o in overrides or []:
        data = deep_merge(data, parse_override(o))
    return from_dict(data)
