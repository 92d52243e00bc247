"""The run's report: a Markdown file and its figures (PNG files in a folder).

Contents: the per-AU table (ICC(3,1), MAE, PCC pooled over all folds' test
frames, and mean +- sd over folds), a config summary, the per-subject table
(ICC(3,1) of each AU over each test subject's own frames, with the photos a
synthetic subject is made from) and figures: predicted vs true per AU,
intensity over time for a few test sequences, training curves, per-subject
ICC, and the authors' demo figure (predicted AU heatmaps over test crops).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import atomic  # noqa: E402
from .config import Config  # noqa: E402
from .errors import FauError  # noqa: E402
from .folds import person_groups, read_folds  # noqa: E402
from .metrics import subject_table  # noqa: E402


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FauError(f"{path}: missing (run the earlier stages first)") from None


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def metrics_table(metrics: dict, aus: list[str]) -> str:
    """Markdown table: per AU pooled ICC / MAE / PCC and fold mean +- sd."""
    pooled, folds = metrics["pooled"], metrics.get("fold_mean_sd", {})
    head = ("| AU | ICC(3,1) | MAE | PCC | ICC folds | MAE folds | PCC folds | n |\n"
            "|---|---|---|---|---|---|---|---|")
    rows = []
    for au in [*aus, "mean"]:
        p = pooled.get(au) if au != "mean" else metrics.get("mean", pooled.get("mean"))
        if p is None:
            continue
        f = folds.get(au, {})

        def ms(m: str) -> str:
            mean, sd = f.get(f"{m}_mean"), f.get(f"{m}_sd")
            return "n/a" if mean is None else f"{_fmt(mean)} ± {_fmt(sd)}"

        label = f"**{au}**" if au == "mean" else au
        n = p.get("n")
        rows.append(f"| {label} | {_fmt(p.get('icc'))} | {_fmt(p.get('mae'))} | {_fmt(p.get('pcc'))} | "
                    f"{ms('icc')} | {ms('mae')} | {ms('pcc')} | {'' if n is None else int(n)} |")
    return "\n".join([head, *rows])


def plot_scatter(pred: pd.DataFrame, aus: list[str], path: Path) -> None:
    """Predicted vs true intensity per AU (jittered true values, box per level)."""
    n = len(aus)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, au in zip(axes.flat, aus):
        d = pred[[f"{au}_true", f"{au}_pred"]].dropna()
        t, p = d[f"{au}_true"].to_numpy(), d[f"{au}_pred"].to_numpy()
        ax.scatter(t + rng.uniform(-0.15, 0.15, len(t)), p, s=4, alpha=0.4)
        ax.plot([0, 5], [0, 5], "k--", lw=0.8)
        ax.set(xlim=(-0.5, 5.5), ylim=(-0.5, 5.5), title=au, xlabel="true", ylabel="predicted")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sequences(pred: pd.DataFrame, aus: list[str], n_seq: int, path: Path) -> list[str]:
    """True (solid) and predicted (dashed) intensity over frames for n test videos."""
    videos = sorted(pred["video"].unique())[:n_seq]
    if not videos:
        return []
    fig, axes = plt.subplots(len(videos), 1, figsize=(10, 2.6 * len(videos)), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, vid in zip(axes[:, 0], videos):
        d = pred[pred["video"] == vid].sort_values("frame")
        for i, au in enumerate(aus):
            ax.plot(d["frame"], d[f"{au}_true"], color=colors(i % 10), lw=1.2, label=f"{au} true")
            ax.plot(d["frame"], d[f"{au}_pred"], color=colors(i % 10), lw=1.0, ls="--")
        ax.set(title=f"{vid} (solid: true, dashed: predicted)", xlabel="frame", ylabel="intensity", ylim=(-0.3, 5.3))
    axes[0, 0].legend(ncol=min(len(aus), 6), fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return videos


def plot_subjects(table: pd.DataFrame, aus: list[str], path: Path) -> None:
    """Per-subject ICC(3,1) (rows: subjects by fold; columns: AUs and their
    mean) as a colour grid with the values written in."""
    cols = [*aus, "mean"]
    values = table[cols].to_numpy(float)  # (subjects, AUs + 1)
    labels = [f"{r.subject} ({r.fold})" if "fold" in table else str(r.subject) for r in table.itertuples()]
    fig, ax = plt.subplots(figsize=(1.2 + 0.62 * len(cols), 0.9 + 0.3 * len(table)))
    im = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7)
    if "fold" in table:
        for i in np.flatnonzero(table["fold"].to_numpy()[1:] != table["fold"].to_numpy()[:-1]):
            ax.axhline(i + 0.5, color="k", lw=1.2)
    ax.axvline(len(aus) - 0.5, color="k", lw=1.2)
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_title("ICC(3,1) within each test subject", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def made_from(manifest: str | Path | None, folds: list[dict]) -> tuple[dict[str, str], dict[str, float]]:
    """From a synthetic dataset's manifest (both empty without one): subject ->
    its source photos and weights, heaviest first; and subject -> how much of
    its dominant photo's person the training subjects of its test fold carry
    (the summed weights of that person's photos over them)."""
    if manifest is None or not Path(manifest).is_file():
        return {}, {}
    subjects = json.loads(Path(manifest).read_text()).get("subjects") or {}
    sources = {str(sid): ", ".join(f"{s['photo']} {s['weight']:.2f}"
                                   for s in sorted(rec["sources"], key=lambda s: -s["weight"]))
               for sid, rec in subjects.items()}
    dom = person_groups(manifest)  # subject -> the person of its dominant photo (as people_summary, folds)
    carried = {sid: sum(s["weight"] for t in f["train"] for s in subjects.get(t, {}).get("sources", [])
                        if s["person"] == dom[sid])
               for f in folds for sid in f["test"] if sid in dom}
    return sources, carried


def subjects_section(table: pd.DataFrame, aus: list[str], manifest: str | Path | None = None,
                     folds: list[dict] | None = None) -> list[str]:
    """Markdown lines: the per-subject table (`fau.metrics.subject_table`)."""
    sources, carried = made_from(manifest, folds or [])
    head = ["subject", *(["fold"] if "fold" in table else []), *(["made from", "in training"] if sources else []),
            "frames", *aus, "mean", "MAE"]
    lines = ["## Per test subject", "",
             "ICC(3,1) of each AU over one test subject's own frames (each subject is tested in one fold). "
             "Unlike the pooled ICC it does not count how far a subject's predictions sit from its labels "
             "on average; the MAE column does. n/a: the subject's label of that AU never changes."
             + (" Made from: the synthetic person's source photos and their weights. In training: how much of "
                "the person of its heaviest photo the fold's training people carry (the summed weights of "
                "that person's photos in them; 0 would be a face the model never saw)." if sources else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict("records"):
        sid = str(r["subject"])
        cells = [r["subject"], *([r["fold"]] if "fold" in r else []),
                 *([sources.get(sid, ""), _fmt(carried.get(sid, float("nan")))] if sources else []), str(r["n"]),
                 *(_fmt(r[au]) for au in aus), f"**{_fmt(r['mean'])}**", _fmt(r["mae"])]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines


def plot_history(histories: dict[str, pd.DataFrame], path: Path) -> None:
    """Training loss per epoch, one line per fold."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for fold, h in histories.items():
        ax.plot(h["epoch"], h["loss"], marker="o", label=fold)
    ax.set(xlabel="epoch", ylabel="training loss (MSE)", title="training curves")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmaps(cfg: Config, model_path: Path, rows: pd.DataFrame, table_dir: Path, path: Path) -> None:
    """The authors' demo figure: predicted AU heatmaps (max over each AU's two points)
    overlaid on test crops, with predicted and true intensities."""
    from .inference import predict_heatmaps

    aus = cfg.dataset.au_names
    images, heatmaps, intensities = predict_heatmaps(cfg, model_path, rows, table_dir)
    n = len(images)
    if n == 0:
        return
    fig, axes = plt.subplots(n, len(aus) + 1, figsize=(1.9 * (len(aus) + 1), 2.0 * n), squeeze=False)
    for r in range(n):
        img = images[r]
        axes[r, 0].imshow(img)
        axes[r, 0].set_title(Path(rows.iloc[r]["imgpath"]).name, fontsize=7)
        for a, au in enumerate(aus):
            hm = np.maximum(heatmaps[r, 2 * a], heatmaps[r, 2 * a + 1])
            ax = axes[r, a + 1]
            ax.imshow(img)
            ax.imshow(hm, cmap="jet", alpha=0.45, vmin=0, vmax=max(255.0, float(hm.max())),
                      extent=(0, img.shape[1], img.shape[0], 0))
            true = rows.iloc[r][au]
            ax.set_title(f"{au} p={intensities[r, a]:.1f} t={_fmt(true, 0)}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def people_summary(manifest: str | Path | None, folds: list[dict]) -> list[str]:
    """Report lines on a synthetic dataset's people (from its manifest): how
    many, from how many source photos of how many people, and whether each
    fold tests people whose dominant photo's person dominates no training
    subject."""
    if manifest is None or not Path(manifest).is_file():
        return []
    data = json.loads(Path(manifest).read_text())
    subjects = data.get("subjects") or {}
    if not subjects:
        return []
    photos = sorted({s["photo"] for r in subjects.values() for s in r["sources"]})
    persons = sorted({s["person"] for r in subjects.values() for s in r["sources"]})
    dom = person_groups(manifest)  # subject -> the person of its dominant photo (as folds.group_by: person)
    held_out = all(not {dom.get(s) for s in f["test"]} & {dom.get(s) for s in f["train"]} for f in folds)
    sizes = Counter(len(r["sources"]) for r in subjects.values())  # photos per morph -> people
    morphs = ", ".join(f"{sizes[k]} of {k} photos" for k in sorted(sizes))
    others = data.get("unlabelled_motion") or []
    return [f"- people: {len(subjects)} synthetic people (morphs: {morphs}) from {len(photos)} source photos of "
            f"{len(persons)} real people ({', '.join(photos)})",
            "- held-out people: " + ("yes: no person's photo dominates subjects on both sides of any fold"
                                     if held_out else "no: some person's photo dominates subjects on both sides "
                                                      "of a fold (folds.group_by: person separates them)"),
            "- unlabelled motion: " + (", ".join(f"AU{a:02d}" for a in others) + " move the faces without a label "
                                       "(synth.other_aus)" if others else "none (only the labelled AUs move the faces)")]


INPUT_WORDS = {  # train.normalization, as the report says it
    "imagenet": "RGB scaled by ImageNet's mean and sd",
    "tf_mean": "RGB minus the TF model zoo's mean",
    "per_crop": "each crop minus its own mean colour, divided by its own contrast",
}


def _config_summary(cfg: Config, n_frames: int, folds: list[dict], manifest: str | Path | None = None) -> str:
    m, t = cfg.model, cfg.train
    lines = [
        f"- dataset: `{cfg.dataset.name}` ({cfg.dataset.kind}, root `{cfg.dataset.root}`"
        f"{', synthetic' if cfg.synth.enabled else ''}), AUs {', '.join(cfg.dataset.au_names)}",
        *people_summary(manifest, folds),
        f"- test frames pooled over folds: {n_frames}",
        "- folds: " + "; ".join(f"{f['name']}: {len(f['train'])} train / {len(f['test'])} test subjects"
                                  for f in folds),
        f"- model: {m.backbone}{'' if m.width == 64 else f' of width {m.width}'} (weights: "
        f"{m.backbone_weights or 'random init'}), input {m.input_size}"
        f"{f' (the middle {m.input_window:g} of the crop)' if m.input_window < 1 else ''}, "
        f"head {'-'.join(map(str, m.head_channels))}, "
        f"SCC {'on' if m.scc.enabled else 'off'} (k={m.scc.k}, {m.scc.impl}, layout {m.scc.layout})",
        f"- training: {t.epochs} epochs, batch {t.batch_size}, Adam lr {t.lr} (/{1 / t.lr_gamma:g} at epochs "
        f"{', '.join(map(str, t.lr_milestones)) or '-'}), weight decay {t.weight_decay}, seed {cfg.seed}"
        + (f" (synthetic people: seed {cfg.people_seed})" if cfg.synth.enabled and cfg.people_seed != cfg.seed
           else ""),
        f"- crops: {cfg.crops.size}x{cfg.crops.size}, similarity alignment "
        + ("of the rigid landmarks onto a neutral face" if cfg.crops.alignment == "rigid"
           else "of eyes + mouth to a template")
        + ("; training augmentation (flip, similarity, colour)" if t.augment.enabled else ""),
        f"- network input: {INPUT_WORDS.get(t.normalization, t.normalization)}; intensities: "
        + ("the mean of each crop's and its mirror image's (flip test)" if cfg.eval.flip_test
           else "one pass per crop (no flip test)"),
    ]
    return "\n".join(lines)


def write_report(cfg: Config, *, metrics_json: str | Path, folds_json: str | Path, annotations_csv: str | Path,
                 predictions: Mapping[str, str | Path], histories: Mapping[str, str | Path],
                 models: Mapping[str, str | Path], report_md: str | Path, figures_dir: str | Path,
                 manifest: str | Path | None = None) -> Path:
    """Write the report `report_md` and its figures into `figures_dir`
    (`manifest`: the synthetic dataset's, for its people).

    `predictions`, `histories` and `models` map fold names to the folds'
    files; the heatmap figure uses the first fold's model. Returns the
    report's path."""
    report_md, figures_dir, annotations_csv = Path(report_md), Path(figures_dir), Path(annotations_csv)
    aus = cfg.dataset.au_names
    try:
        metrics = json.loads(Path(metrics_json).read_text())
    except FileNotFoundError:
        raise FauError(f"{metrics_json}: missing (run the pool stage first)") from None
    folds = read_folds(folds_json)
    names = [f["name"] for f in folds]
    for what, files in (("predictions", predictions), ("histories", histories), ("models", models)):
        if sorted(files) != sorted(names):
            raise FauError(f"{folds_json}: folds {', '.join(names)}, but {what} are given for "
                           f"{', '.join(files) or 'none'}")
    figures_dir.mkdir(parents=True, exist_ok=True)

    preds = pd.concat([_read_csv(Path(predictions[n])).assign(fold=n) for n in names], ignore_index=True)
    histories = {n: _read_csv(Path(histories[n])) for n in names}

    plot_scatter(preds, aus, figures_dir / "pred_vs_true.png")
    seqs = plot_sequences(preds, aus, cfg.report.sequences, figures_dir / "sequences.png")
    plot_history(histories, figures_dir / "training_curves.png")
    order = {n: i for i, n in enumerate(names)}
    subjects = subject_table(preds, aus).sort_values(
        ["fold", "subject"], key=lambda c: c.map(order) if c.name == "fold" else c, kind="stable")
    plot_subjects(subjects, aus, figures_dir / "subjects.png")
    figures = [("Predicted vs true intensity (pooled test frames)", "pred_vs_true.png"),
               (f"Intensity over time: {', '.join(seqs)}", "sequences.png"),
               ("Training curves", "training_curves.png"),
               ("ICC(3,1) within each test subject", "subjects.png")]
    if cfg.report.heatmap_examples > 0:
        first = names[0]
        fold_preds = preds[preds["fold"] == first]
        # Examples with the most AU activity, so the heatmaps show something.
        activity = fold_preds[[f"{au}_true" for au in aus]].fillna(0).sum(axis=1)
        rows = fold_preds.loc[activity.sort_values(ascending=False, kind="stable").index[:cfg.report.heatmap_examples]]
        ann = _read_csv(annotations_csv)
        rows = ann.merge(rows[["video", "frame"]], on=["video", "frame"], how="inner")
        plot_heatmaps(cfg, Path(models[first]), rows, annotations_csv.parent, figures_dir / "heatmaps.png")
        figures.append((f"Predicted AU heatmaps on test crops ({first}; p: predicted, t: true)", "heatmaps.png"))

    parts = [
        f"# AU intensity report: {cfg.dataset.name}",
        "",
        "Per AU over all folds' test frames (pooled); `folds`: mean ± sd over folds. "
        "ICC(3,1) (Shrout & Fleiss 1979), MAE, Pearson r; frames whose label is not coded are left out "
        "of that AU only.",
        "",
        metrics_table(metrics, aus),
        "",
        "## Run",
        "",
        _config_summary(cfg, len(preds), folds, manifest),
        "",
        *subjects_section(subjects, aus, manifest, folds),
        "",
        "## Figures",
        "",
    ]
    link = Path(os.path.relpath(figures_dir.absolute(), report_md.absolute().parent)).as_posix()
    for title, name in figures:
        parts += [f"### {title}", "", f"![{title}]({link}/{name})", ""]
    atomic.write_text(report_md, "\n".join(parts))
    return report_md
