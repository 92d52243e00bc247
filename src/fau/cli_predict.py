"""`fau predict INPUT... --model MODEL --out DIR`: AU intensities for videos,
images and image folders (`fau.predict`), one OpenFace-style CSV per input.

MODEL is a `model.pt` path or an MLflow model URI (`models:/<name>/<version>`,
`models:/<name>@<alias>`, `runs:/<run id>/model`), looked up at
--tracking-uri (default: $MLFLOW_TRACKING_URI, else the config's
`mlflow.uri`). A bad input prints one line naming it; the other inputs are
still done and the exit status is 1 at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import Config
from .errors import FauError


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video (any file OpenCV reads), image, or folder of images (natural sort order)")
    p.add_argument("--model", required=True,
                   help="model.pt, or an MLflow URI: models:/<name>/<version>, runs:/<run id>/model")
    p.add_argument("--out", type=Path, required=True, help="output folder: <out>/<input name>.csv")
    p.add_argument("--overlay", action="store_true",
                   help="also write <out>/<input name>.mp4 (.avi without an mp4 codec; .png for an image): "
                        "landmarks, a bar per AU, heatmaps over the face")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking / registry URI for a models:/ or runs:/ MODEL "
                        "(default: $MLFLOW_TRACKING_URI, else the config's mlflow.uri)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: fp32 (the faster on CPU and on an H100); bf16: autocast, CUDA only")
    p.add_argument("--batch-size", type=int, default=None, help="frames per network batch (default 16 CPU, 64 CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate for timestamps (default: the video's; image folders 30, as OpenFace)")
    p.add_argument("--predictor", default=None,
                   help="dlib 68-point model file (default: the one the model was trained with, if present)")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="intensity = mean over the face crop and its mirror image (default: the config's "
                        "eval.flip_test, as evaluation; on)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def output_names(inputs: list[Path]) -> dict[Path, str]:
    """Input -> output stem; FauError when two inputs would write one file."""
    names: dict[str, Path] = {}
    for path in inputs:
        stem = path.name if path.is_dir() else path.stem
        if stem in names:
            raise FauError(f"{path}: gives the same output name '{stem}' as {names[stem]} (rename one, or run "
                           "them with different --out folders)")
        names[stem] = path
    return {p: n for n, p in names.items()}


def run_predict(args: argparse.Namespace, cfg: Config) -> int:
    from .media import open_input
    from .predict import Predictor
    from .registry import resolved_model

    inputs = [Path(p) for p in args.inputs]
    names = output_names(inputs)
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or cfg.mlflow.uri
    failed = 0
    with resolved_model(args.model, uri) as model_path:
        flip = cfg.eval.flip_test if args.flip_test is None else args.flip_test
        predictor = Predictor(model_path, device=args.device, batch_size=args.batch_size,
                              precision=args.precision, threads=args.threads, predictor=args.predictor,
                              flip_test=flip)
        print(f"model {args.model}: AUs {', '.join(sorted(predictor.aus))}; input {predictor.input_size} px; "
              f"device {predictor.device.type}{' (bf16)' if predictor.bf16 else ''}"
              f"{'; flip test' if predictor.flip_test else ''}", file=sys.stderr)
        for path in inputs:
            try:
                media = open_input(path, fps=args.fps)
                out = args.out / f"{names[path]}.csv"
                summary = predictor.run(media, out, args.out / names[path] if args.overlay else None,
                                        progress=not args.quiet)
            except FauError as e:
                print(f"fau predict: error: {e}", file=sys.stderr)
                failed += 1
                continue
            extra = f" + {summary.overlay}" if summary.overlay else ""
            print(f"{path}: {summary.frames} frames, face in {summary.faces}, {summary.fps:.1f} frames/s "
                  f"-> {summary.csv}{extra}")
    if failed:
        print(f"fau predict: {failed} of {len(inputs)} inputs failed", file=sys.stderr)
        return 1
    return 0
