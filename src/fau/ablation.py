"""The ablation: the main model against its variants (`ablation.variants`,
e.g. the network without SCC), trained and tested on the same folds with the
same seed.

`ablation_table` reads each run's pooled metrics (`metrics.json`) and writes
`ablation.csv` (one row per variant: pooled mean ICC(3,1) / MAE / PCC over
AUs, their mean +- sd over folds, and per-AU pooled ICC) and a figure
(per-AU pooled ICC of every variant, and the fold ICCs). `ablation_report`
appends an "Ablation" section, the table, the figure and what it shows, to
a copy of the report (`report_ablation.md`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import atomic  # noqa: E402
from .config import deep_merge  # noqa: E402
from .errors import FauError, read_json  # noqa: E402

MAIN = "main"  # the row of the main config


def variant_config(config: Mapping, overrides: Mapping) -> dict:
    """The plain config mapping of a variant: `config` with the variant's
    overrides (of the `model` / `train` sections) merged in."""
    unknown = [k for k in overrides if k not in ("model", "train")]
    if unknown:
        raise FauError(f"config key 'ablation.variants' may change model and train only, not {unknown[0]!r}")
    return deep_merge(dict(config), dict(overrides))


def ablation_table(runs: Mapping[str, str | Path], out_csv: str | Path, out_png: str | Path) -> pd.DataFrame:
    """`runs`: variant name -> its metrics.json (the main run first, as `main`)."""
    rows, per_au, fold_icc = [], {}, {}
    for name, path in runs.items():
        m = read_json(path, "run the pool stage of this variant first")
        sd = m.get("fold_mean_sd", {}).get("mean", {})
        row = {"variant": name}
        for k in ("icc", "mae", "pcc"):
            row[k] = m["mean"][k]
            row[f"{k}_fold_mean"] = sd.get(f"{k}_mean", float("nan"))
            row[f"{k}_fold_sd"] = sd.get(f"{k}_sd", float("nan"))
        aus = list(m["pooled"])
        for au in aus:
            row[f"icc_{au}"] = m["pooled"][au]["icc"]
        per_au[name] = [m["pooled"][au]["icc"] for au in aus]
        fold_icc[name] = [f["mean"]["icc"] for f in m.get("folds", {}).values()]
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic.write_csv(Path(out_csv), table)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(1, len(per_au))
    x = np.arange(len(aus))
    for i, (name, vals) in enumerate(per_au.items()):
        ax1.bar(x + i * width - 0.4 + width / 2, vals, width, label=name)
    ax1.set(xticks=x, xticklabels=aus, ylabel="pooled ICC(3,1)", title="per AU")
    ax1.axhline(0, color="k", lw=0.6)
    ax1.legend(fontsize=8)
    for i, (name, vals) in enumerate(fold_icc.items()):
        ax2.scatter([i] * len(vals), vals, s=18)
        ax2.plot([i - 0.2, i + 0.2], [np.mean(vals)] * 2, "k-", lw=1.2)
    ax2.set(xticks=range(len(fold_icc)), xticklabels=list(fold_icc), ylabel="mean ICC per fold", title="folds")
    fig.tight_layout()
    with atomic.replacing(Path(out_png)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return table


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"


def what_it_shows(table: pd.DataFrame) -> str:
    """One sentence per variant against the main model: the difference of
    pooled mean ICC, and whether it exceeds the fold-to-fold spread."""
    main = table.iloc[0]
    lines = []
    for _, r in table.iloc[1:].iterrows():
        d = main["icc"] - r["icc"]
        spread = float(np.nanmax([main["icc_fold_sd"], r["icc_fold_sd"]]))
        better = "better" if d > 0 else "worse"
        size = ("larger than" if abs(d) > spread else "within") if np.isfinite(spread) else "(no fold spread)"
        lines.append(f"- `{main['variant']}` vs `{r['variant']}`: pooled mean ICC {_fmt(main['icc'])} vs "
                     f"{_fmt(r['icc'])} ({'+' if d >= 0 else ''}{d:.2f}: the main model is {better}); the "
                     f"difference is {size} the fold-to-fold sd ({_fmt(spread)}), MAE {_fmt(main['mae'])} vs "
                     f"{_fmt(r['mae'])}.")
    return "\n".join(lines)


def ablation_report(report_md: str | Path, table_csv: str | Path, figure: str | Path, variants: Mapping[str, Mapping],
                    out_md: str | Path) -> Path:
    """`report_md` plus an Ablation section -> `out_md`."""
    table = pd.read_csv(table_csv)
    try:
        text = Path(report_md).read_text()
    except FileNotFoundError:
        raise FauError(f"{report_md}: missing (run the report first)") from None
    head = ("| variant | changes | pooled ICC | pooled MAE | pooled PCC | ICC folds | MAE folds |\n"
            "|---|---|---|---|---|---|---|")
    rows = []
    for _, r in table.iterrows():
        change = "the config as is" if r["variant"] == MAIN else f"`{json.dumps(variants.get(r['variant'], {}))}`"
        rows.append(f"| {r['variant']} | {change} | {_fmt(r['icc'])} | {_fmt(r['mae'])} | {_fmt(r['pcc'])} | "
                    f"{_fmt(r['icc_fold_mean'])} ± {_fmt(r['icc_fold_sd'])} | "
                    f"{_fmt(r['mae_fold_mean'])} ± {_fmt(r['mae_fold_sd'])} |")
    link = Path(os.path.relpath(Path(figure).absolute(), Path(out_md).absolute().parent)).as_posix()
    section = ["", "## Ablation", "",
               "Every variant trained and tested on the same folds with the same seed; pooled over all folds' test "
               "frames, mean over AUs; `folds`: mean ± sd over folds.", "", head, *rows, "", what_it_shows(table), "",
               f"![Ablation: pooled ICC per AU and mean ICC per fold]({link})", ""]
    atomic.write_text(Path(out_md), text.rstrip("\n") + "\n" + "\n".join(section))
    return Path(out_md)
