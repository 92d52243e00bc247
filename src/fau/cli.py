"""`fau` command line: `fau <command> [--config FILE ...] [--set key=value ...] ...`.

For running one stage outside the workflow: every input and output is a
path argument, e.g.

    fau landmarks --config config/config.yaml --frames results/x/index/frames.csv \
        --video F001_T1 --out results/x/landmarks/F001_T1.csv

Each command lives in a small glue module (`fau.cli_data`, `fau.cli_model`,
`fau.cli_workflow`) as `add_<name>(parser)` + `run_<name>(args, cfg)` calling
the same `fau.stages` function as the workflow's rule; only the chosen
command's module is imported, so `fau --help` stays fast. The config is
checked against the schema like the workflow's. Bad input (`FauError`)
prints one line `fau <command>: error: <message>` and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import FauError, user_os_error

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("fau.cli_data", "write a synthetic dataset in the official BP4D or DISFA layout at dataset.root"),
    "index": ("fau.cli_data", "read a dataset's labels into one frame table (one row per labelled frame)"),
    "landmarks": ("fau.cli_data", "dlib 68-point landmarks for every labelled frame of one video / task"),
    "crops": ("fau.cli_data", "aligned crops, AU centre points and the crop table of one video / task"),
    "annotations": ("fau.cli_data", "merge per-video crop tables into the dataset's annotation table + JSON"),
    "folds": ("fau.cli_data", "subject-exclusive folds (k-fold, parts or explicit lists)"),
    "train": ("fau.cli_model", "train the SCC heatmap network on one fold (resumes from its checkpoint)"),
    "evaluate": ("fau.cli_model", "predict a fold's test subjects and compute ICC(3,1) / MAE / PCC per AU"),
    "pool": ("fau.cli_model", "pool all folds' predictions: pooled metrics and per-fold mean +- sd"),
    "mlflow-start": ("fau.cli_workflow", "create the MLflow parent run of a workflow invocation (before the fan-out)"),
    "mlflow-sync": ("fau.cli_mlflow", "log to MLflow what a tracking server that was down missed (run files)"),
    "mlflow-ui": ("fau.cli_mlflow", "the MLflow UI on the config's store, opened on the experiment's runs table"),
    "report": ("fau.cli_workflow", "write the report (tables and figures) for a finished run"),
    "predict": ("fau.cli_predict", "AU intensities for videos, images or image folders: one OpenFace-style CSV each"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: fau <command> [options]   (fau <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def build_parser(name: str) -> argparse.ArgumentParser:
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"fau {name}", description=help_)
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="config YAML (repeatable, later files win; default: built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set train.epochs=2")
    parser.add_argument("--config-json", default=None, metavar="JSON",
                        help="config mapping as inline JSON, applied after --config files")
    attr = name.replace("-", "_")
    getattr(module, f"add_{attr}")(parser)
    parser.set_defaults(_run=getattr(module, f"run_{attr}"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        print(f"fau: error: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    args = build_parser(name).parse_args(argv[1:])
    try:
        from .config import load_config

        cfg = load_config(args.config, args.set, inline=args.config_json)
        rc = args._run(args, cfg)
    except FauError as e:
        print(f"fau {name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder the user cannot write, a full disk: one line, not a traceback
        line = user_os_error(e)
        if line is None:
            raise
        print(f"fau {name}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fau {name}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
