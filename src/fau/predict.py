"""`fau predict`: a trained model on a user's video, image or image folder.

Per input one CSV in OpenFace 2 FeatureExtraction's layout (`columns`):
`frame, face_id, timestamp, confidence, success, x_0..x_67, y_0..y_67`,
then `AUxx_r` for the model's AUs (sorted), comma-separated, no spaces,
one row per frame. `frame` counts from 1 and `timestamp` is
(frame - 1) / fps, as in OpenFace; `confidence` is the HOG detector's score
of the detection the points come from (as in the landmark table, not
OpenFace's 0..1); `face_id` is 0 (the largest face). A frame without a
face has `success` 0, `confidence` 0 and empty landmark and AU cells.

The preprocessing is the training data's, read from the model file
(`model.pt` records `preprocessing` = the landmark and crop config it was
trained with): the landmark stage's tracking (`fau.landmarks.FaceTracker`),
the alignment and the crop JPEG round trip and resize
(`fau.preprocess.network_input`), the model's normalisation; the
intensities are evaluation's (`fau.inference.intensities`, with the flip
test of `eval.flip_test` unless --no-flip-test). Frames are
streamed (decoded ahead in a child process, `fau.media`), never collected;
the network runs on batches of `batch_size` frames (fp32; bf16 autocast on
CUDA on request: on an H100 it was the slower precision, see
benchmarks/README.md). Outputs are written to a temp file beside the final
one and moved into place at the end (`fau.atomic`): an interrupted or
failed input leaves no half-written CSV or video.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

import numpy as np
import torch
from tqdm import tqdm

from . import atomic
from .config import CropsConfig, LandmarksConfig, from_dict
from .errors import FauError
from .inference import input_window, intensities, load_model
from .landmarks import LandmarkDetector, predictor_path
from .media import MediaInput
from .preprocess import network_input
from .train import select_device

ID_COLUMNS = ["frame", "face_id", "timestamp", "confidence", "success"]
POINT_COLUMNS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]


def columns(aus: list[str]) -> list[str]:
    """The CSV header for the model's AU names ('AU06', ...)."""
    return ID_COLUMNS + POINT_COLUMNS + [f"{a}_r" for a in sorted(aus)]


def warn(msg: str) -> None:
    tqdm.write(f"warning: {msg}", file=sys.stderr)


@dataclass
class Summary:
    """What one input gave."""

    path: Path
    csv: Path
    frames: int
    faces: int
    seconds: float
    overlay: Optional[Path] = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class _Pending:
    """A frame waiting for its batch: its landmarks result, its row in the
    batch (None: no face) and, for the overlay, a copy of the frame."""

    frame: int
    ok: bool
    conf: float
    pts: Optional[np.ndarray]  # (68, 2) frame pixels
    m: Optional[np.ndarray]  # (2, 3) frame -> crop
    slot: Optional[int]
    image: Optional[np.ndarray]


class Predictor:
    """A loaded model with the preprocessing it was trained with.

    model: path of a `model.pt` (an MLflow URI is resolved by
    `fau.registry.resolve_model` first). device: 'auto' | 'cpu' | 'cuda'.
    precision: 'auto' (fp32, the faster on the CPU and on the H100 measured) | 'fp32' | 'bf16' (CUDA autocast).
    flip_test: intensities averaged over each crop and its mirror image,
    as evaluation does with `eval.flip_test` (`fau.inference.intensities`).
    """

    def __init__(self, model_path: str | Path, device: str = "auto", batch_size: Optional[int] = None,
                 precision: str = "auto", threads: Optional[int] = None, predictor: Optional[str] = None,
                 flip_test: bool = True):
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.device = select_device(device)
        self.net, self.meta = load_model(model_path, self.device)
        self.source = str(model_path)
        self.aus = list(self.meta["aus"])  # model order
        self.order = sorted(range(len(self.aus)), key=lambda i: self.aus[i])  # CSV order (sorted names)
        mc = self.meta["model_config"]
        self.input_size = int(mc["input_size"])
        self.window = input_window(self.meta)  # model.input_window
        self.normalization = self.meta.get("normalization", "imagenet")
        self.landmarks_cfg, self.crops_cfg = preprocessing_of(self.meta, str(model_path), predictor)
        self.detector = LandmarkDetector(self.landmarks_cfg)
        cuda = self.device.type == "cuda"
        if precision not in ("auto", "fp32", "bf16"):
            raise FauError(f"precision {precision!r}: expected auto, fp32 or bf16")
        self.bf16 = precision == "bf16"  # auto: fp32 on every device (bf16 was the slower on an H100)
        if self.bf16 and not cuda:
            raise FauError("bf16 inference needs a CUDA device (use --precision fp32 on CPU)")
        self.flip_test = bool(flip_test)
        self.batch_size = int(batch_size or (64 if cuda else 16))
        if self.batch_size < 1:
            raise FauError(f"batch size {self.batch_size}: must be >= 1")
        s = self.input_size
        # Host batch buffer, pinned on CUDA so the copy overlaps: (B, 3, S, S) float32.
        self._host = torch.empty((self.batch_size, 3, s, s), dtype=torch.float32, pin_memory=cuda)
        if cuda:
            torch.backends.cudnn.benchmark = True

    @property
    def au_columns(self) -> list[str]:
        return columns(self.aus)

    # ------------------------------------------------------------ network

    @torch.no_grad()
    def _forward(self, n: int, heatmaps: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The first n rows of the host batch -> AU intensities (n, A) in
        model order and, if asked, the heatmaps (n, P, S/4, S/4)."""
        x = self._host[:n].to(self.device, non_blocking=True)  # (n, 3, S, S)
        values, out = intensities(self.net, x, self.flip_test, self.bf16)  # (n, A), (n, P, S/4, S/4)
        return values, (out.cpu().numpy() if heatmaps else None)

    # ------------------------------------------------------------ one input

    def run(self, media: MediaInput, csv_path: str | Path, overlay_path: Optional[str | Path] = None,
            progress: bool = True) -> Summary:
        """Predict every frame of `media` into `csv_path` (and an overlay
        video / image at `overlay_path`); returns the summary."""
        from .overlay import OverlayWriter

        csv_path = Path(csv_path)
        t0 = time.perf_counter()
        tracker = self.detector.tracker()
        batch = self._host.numpy()  # (B, 3, S, S) view of the host buffer
        pending: list[_Pending] = []
        n_batch = 0
        counts = {"frames": 0, "faces": 0}
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic.replacing(csv_path))
            out = stack.enter_context(open(tmp, "w", newline=""))
            out.write(",".join(self.au_columns) + "\n")
            overlay = None
            if overlay_path is not None:
                overlay = stack.enter_context(OverlayWriter(Path(overlay_path), media.fps, still=media.kind == "image",
                                                            aus=[self.aus[i] for i in self.order]))
            bar = stack.enter_context(tqdm(total=media.n_frames, desc=media.name, unit="frame", file=sys.stderr,
                                           disable=not progress, leave=False))

            def flush() -> None:
                nonlocal n_batch
                inten, maps = (self._forward(n_batch, overlay is not None) if n_batch else (None, None))
                for p in pending:
                    values = inten[p.slot][self.order] if p.ok else None  # (A,) sorted AU order
                    self._write_row(out, p, values, media.fps)
                    if overlay is not None:
                        overlay.add(p.image, p.pts, values, maps[p.slot] if p.ok else None, p.m,
                                    self.crops_cfg.size, self.input_size, self.window)
                counts["faces"] += sum(p.ok for p in pending)
                counts["frames"] += len(pending)
                bar.update(len(pending))
                pending.clear()
                n_batch = 0

            for frame, (bgr, grey) in media.frames(self.landmarks_cfg.read_ahead):
                ok, conf, _box, pts = tracker.step(grey)
                m = slot = None
                if ok:
                    batch[n_batch], m = network_input(bgr, pts, self.crops_cfg, self.input_size, self.normalization,
                                                      self.window)
                    slot, n_batch = n_batch, n_batch + 1
                pending.append(_Pending(frame, ok, conf, pts, m, slot,
                                        bgr.copy() if overlay is not None else None))  # the ring slot is reused
                if len(pending) == self.batch_size:
                    flush()
            flush()
            if counts["frames"] == 0:
                raise FauError(f"{media.path}: no decodable frame")
        seconds = time.perf_counter() - t0
        if media.kind == "video" and media.n_frames and counts["frames"] < 0.95 * media.n_frames:
            warn(f"{media.path}: decoded {counts['frames']} of the {media.n_frames} frames its container "
                 "announces (truncated or corrupt video?)")
        if counts["faces"] == 0:
            warn(f"{media.path}: no face found in any of its {counts['frames']} frames (every row has success 0)")
        return Summary(media.path, csv_path, counts["frames"], counts["faces"], seconds,
                       overlay.path if overlay is not None else None)

    def _write_row(self, out: TextIO, p: _Pending, values: Optional[np.ndarray], fps: float) -> None:
        ts = (p.frame - 1) / fps
        if not p.ok:  # empty landmark and AU cells
            out.write(f"{p.frame},0,{ts:.3f},0,0" + "," * (len(POINT_COLUMNS) + len(self.aus)) + "\n")
            return
        xs = ",".join(f"{v:.1f}" for v in p.pts[:, 0])
        ys = ",".join(f"{v:.1f}" for v in p.pts[:, 1])
        au = ",".join(f"{v:.4f}" for v in values)
        conf = p.conf if math.isfinite(p.conf) else 0.0
        out.write(f"{p.frame},0,{ts:.3f},{conf:.3f},1,{xs},{ys},{au}\n")


def preprocessing_of(meta: dict, source: str, predictor: Optional[str] = None
                     ) -> tuple[LandmarksConfig, CropsConfig]:
    """The landmark and crop config a model was trained with (model.pt's
    `preprocessing`). `predictor` overrides the recorded dlib model file; a
    recorded file that is not on this machine falls back to the default
    copy (the same standard 68-point model) with a warning."""
    pre = meta.get("preprocessing")
    if not isinstance(pre, dict) or not {"landmarks", "crops"} <= set(pre):
        raise FauError(f"{source}: the model file records no preprocessing (landmarks, crops); it was written "
                       "by an older version: train it again")
    try:
        cfg = from_dict({"landmarks": dict(pre["landmarks"]), "crops": dict(pre["crops"])})
    except FauError as e:
        raise FauError(f"{source}: its recorded preprocessing does not fit this version ({e})") from None
    lm = cfg.landmarks
    if predictor:
        lm = _replace(lm, predictor=predictor)
    elif lm.predictor and not Path(lm.predictor).is_file():
        warn(f"{source}: the dlib model file it was trained with ({lm.predictor}) is not here; using "
             f"{predictor_path(None)}")
        lm = _replace(lm, predictor=None)
    return lm, cfg.crops


def _replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def predict_file(cfg, model: str, input_path: str | Path, csv_path: str | Path,
                 overlay_dir: Optional[str | Path] = None, threads: Optional[int] = None) -> str:
    """One input of the workflow's `predict` target (config section
    `predict`): its CSV, and with `overlay_dir` the overlay inside it. An
    MLflow URI is looked up at `mlflow.uri`."""
    from .media import open_input
    from .mlflow_runs import resolve_uri
    from .registry import resolved_model

    p = cfg.predict
    media = open_input(input_path, fps=p.fps)
    with resolved_model(model, resolve_uri(cfg.mlflow.uri)) as model_path:
        predictor = Predictor(model_path, device=p.device, batch_size=p.batch_size, precision=p.precision,
                              threads=threads, flip_test=cfg.eval.flip_test)
        overlay = None
        if overlay_dir is not None:
            Path(overlay_dir).mkdir(parents=True, exist_ok=True)
            overlay = Path(overlay_dir) / media.name
        s = predictor.run(media, csv_path, overlay, progress=True)
    return (f"{input_path}: {s.frames} frames, face in {s.faces}, {s.fps:.1f} frames/s -> {s.csv}"
            + (f" + {s.overlay}" if s.overlay else ""))
