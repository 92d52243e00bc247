"""Per-fold training with exact resume.

`train_fold` trains on the fold's train subjects (rows with every AU coded),
checkpoints every epoch atomically to its checkpoint file (model, optimizer,
scheduler, epoch, torch RNG states, history) and after the last epoch writes
the model file and the history table. Started again with the same checkpoint
file it resumes from it and ends with bitwise the same weights as an
uninterrupted run (CPU): the batch order of epoch e comes from a generator
seeded with (seed, e), nothing else draws random numbers.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import atomic
from .config import Config, to_plain
from .annotations import read_annotations
from .data import AUDataset
from .errors import FauError
from .model import STRIDE, build_model

def log(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def select_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise FauError("config key 'train.device' is 'cuda' but no CUDA device is available")
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def training_rows(df: pd.DataFrame, fold: dict, aus: list[str], max_frames: Optional[int] = None,
                  seed: int = 0) -> tuple[pd.DataFrame, int]:
    """Rows of the fold's train subjects with every AU coded (and at most
    max_frames of them, a seeded subsample in table order); also the number
    of rows left out for a NaN label."""
    rows = df[df["subject"].astype(str).isin([str(s) for s in fold["train"]])]
    coded = rows[aus].notna().all(axis=1)
    rows = rows[coded]
    if max_frames is not None and len(rows) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_frames, replace=False))
        rows = rows.iloc[keep]
    return rows.reset_index(drop=True), int((~coded).sum())


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on convolution weights only (conv, deconv, the SCC edge
    1x1 conv); none on BN parameters and biases."""
    decay, rest = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_conv = isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and name == "weight"
            is_edge = type(module).__name__ == "SCC" and name == "weight"
            (decay if is_conv or is_edge else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Deterministic algorithms (same config + seed -> same weights on CPU),
    without torch's NaN-filling of every new tensor: nothing here reads
    uninitialised memory, and the fill is a measurable share of a step."""
    prev = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    if enabled:
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0])
        torch.utils.deterministic.fill_uninitialized_memory = prev[1]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam with L2 decay on convolution (and SCC edge) weights; fused: one
    pass over all parameters instead of a loop of small kernels (the SCC
    weights are most of the model at paper size)."""
    return torch.optim.Adam(param_groups(model, weight_decay), lr=lr, fused=True)


def signature(cfg: Config, fold: dict, aus: list[str]) -> dict:
    """What a checkpoint must share with this run to be resumed (not epochs,
    device or workers)."""
    t = to_plain(cfg.train)
    for k in ("epochs", "device", "workers"):
        t.pop(k)
    return {"seed": cfg.seed, "model": to_plain(cfg.model), "train": t, "aus": list(aus),
            "fold": {k: [str(s) for s in fold[k]] for k in ("train", "test")}}


def _load(path: Path, device: torch.device) -> Optional[dict]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # truncated / foreign file
        log(f"{path}: unreadable ({type(e).__name__}); ignoring it")
        return None


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The batch order of an epoch: a permutation seeded from (seed, epoch)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def _write_history(path: Path, history: list[dict]) -> None:
    atomic.write_csv(path, pd.DataFrame(history, columns=["epoch", "loss", "lr", "seconds"]))


def default_checkpoint(model_path: str | Path) -> Path:
    """`<model>.checkpoint.pt` beside the model file (the `fau train` default)."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.checkpoint.pt")


def train_fold(cfg: Config, annotations_csv: str | Path, fold: dict, model_path: str | Path,
               history_path: str | Path, checkpoint_path: str | Path | None = None,
               on_epoch: Callable[[int, dict], None] | None = None, threads: int | None = None) -> dict:
    """Train one fold into `model_path` (and its per-epoch `history_path`);
    resume from `checkpoint_path` (default `default_checkpoint(model_path)`);
    return at once when the model file is complete for this config.

    Returns {"fold", "model", "epochs", "loss", "n_train", "n_excluded",
    "resumed_from", "seconds"}.
    """
    annotations_csv, model_path, history_path = Path(annotations_csv), Path(model_path), Path(history_path)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else default_checkpoint(model_path)
    aus = cfg.dataset.au_names
    device = select_device(cfg.train.device)
    sig = signature(cfg, fold, aus)
    epochs = cfg.train.epochs

    done = _load(model_path, torch.device("cpu")) if model_path.exists() else None
    if done is not None and done.get("signature") == sig and done.get("epochs") == epochs and "state_dict" in done:
        log(f"{model_path}: complete ({epochs} epochs); nothing to do")
        if not history_path.exists():
            _write_history(history_path, done.get("history") or [])
        hist = done.get("history") or [{}]
        return {"fold": fold["name"], "model": str(model_path), "epochs": epochs, "loss": hist[-1].get("loss"),
                "n_train": done.get("n_train"), "n_excluded": done.get("n_excluded"), "resumed_from": epochs,
                "seconds": 0.0}

    df = read_annotations(annotations_csv, aus)
    rows, n_excluded = training_rows(df, fold, aus, cfg.train.max_train_frames, cfg.seed)
    if rows.empty:
        raise FauError(f"{annotations_csv}: no fully coded rows for the train subjects of {fold['name']} "
                       f"({', '.join(map(str, fold['train'][:5]))}...)")
    log(f"{fold['name']}: {len(rows)} training frames; {n_excluded} left out (an AU not coded)")

    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        with deterministic(device.type == "cpu"):
            return _train(cfg, fold, rows, n_excluded, annotations_csv.parent, model_path, history_path,
                          checkpoint_path, device, sig, on_epoch, threads)
    finally:
        torch.set_num_threads(prev_threads)


def _train(cfg: Config, fold: dict, rows: pd.DataFrame, n_excluded: int, table_dir: Path, model_path: Path,
           history_path: Path, ckpt_path: Path, device: torch.device, sig: dict,
           on_epoch: Callable[[int, dict], None] | None, threads: int | None) -> dict:
    t_cfg, m_cfg = cfg.train, cfg.model
    aus = sig["aus"]
    torch.manual_seed(cfg.seed)
    model = build_model(m_cfg, 2 * len(aus)).to(device)
    optimizer = make_optimizer(model, t_cfg.lr, t_cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(t_cfg.lr_milestones), t_cfg.lr_gamma)
    history: list[dict] = []
    start = 1
    ckpt = _load(ckpt_path, device) if ckpt_path.exists() else None
    if ckpt is not None:
        if ckpt.get("signature") != sig:
            log(f"{ckpt_path}: written with another config or fold; starting over")
        elif ckpt["epoch"] >= t_cfg.epochs:
            log(f"{ckpt_path}: already at epoch {ckpt['epoch']} >= train.epochs {t_cfg.epochs}; starting over")
        else:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            _set_rng_state(ckpt["rng"])
            history = list(ckpt["history"])
            start = ckpt["epoch"] + 1
            log(f"{ckpt_path}: resuming after epoch {ckpt['epoch']}")
    resumed_from = start - 1

    dataset = AUDataset(rows, table_dir, aus, m_cfg.input_size, t_cfg.normalization, targets=True,
                        sigma=m_cfg.sigma, stride=STRIDE, augment=t_cfg.augment, seed=cfg.seed,
                        window=m_cfg.input_window)
    workers = t_cfg.workers if t_cfg.workers is not None else (max(0, (threads or 1) - 1)
                                                              if device.type == "cuda" else 0)
    use_bf16 = bool(t_cfg.bf16 and device.type == "cuda")
    t_start = time.time()
    for epoch in tqdm(range(start, t_cfg.epochs + 1), desc=f"{fold['name']} epochs", file=sys.stderr,
                      initial=start - 1, total=t_cfg.epochs):
        t0 = time.time()
        dataset.epoch = epoch
        loader = DataLoader(dataset, batch_size=t_cfg.batch_size, sampler=epoch_order(len(dataset), cfg.seed, epoch),
                            num_workers=workers, pin_memory=device.type == "cuda")
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        total, count = 0.0, 0
        for batch in tqdm(loader, desc=f"epoch {epoch}", file=sys.stderr, leave=False):
            x = batch["image"].to(device, non_blocking=True)  # (B, 3, S, S)
            target = batch["target"].to(device, non_blocking=True)  # (B, P, S/4, S/4)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = model(x)  # (B, P, S/4, S/4)
            loss = nn.functional.mse_loss(out.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        scheduler.step()
        row = {"epoch": epoch, "loss": total / count, "lr": lr, "seconds": time.time() - t0}
        history.append(row)
        atomic.torch_save(ckpt_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                      "scheduler": scheduler.state_dict(), "epoch": epoch, "rng": _rng_state(),
                                      "history": history, "signature": sig})
        log(f"{fold['name']} epoch {epoch}/{t_cfg.epochs}: loss {row['loss']:.4f} lr {lr:.2e} "
            f"({row['seconds']:.1f} s)")
        if on_epoch is not None:
            on_epoch(epoch, {"loss": row["loss"], "lr": lr})

    if not history:  # no epoch ran: an untrained model must not look like a result
        raise FauError(f"{model_path}: no epoch trained (train.epochs is {t_cfg.epochs}); model not written")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # The preprocessing the training crops went through, so that inference on
    # new videos (`fau predict`) repeats it exactly.
    preprocessing = {"landmarks": to_plain(cfg.landmarks), "crops": to_plain(cfg.crops)}
    atomic.torch_save(model_path, {"state_dict": state, "model_config": to_plain(m_cfg), "aus": aus,
                                        "normalization": t_cfg.normalization, "epochs": t_cfg.epochs,
                                        "preprocessing": preprocessing,
                                        "history": history, "n_train": len(rows), "n_excluded": n_excluded,
                                        "signature": sig})
    _write_history(history_path, history)
    return {"fold": fold["name"], "model": str(model_path), "epochs": t_cfg.epochs,
            "loss": history[-1]["loss"] if history else None, "n_train": len(rows), "n_excluded": n_excluded,
            "resumed_from": resumed_from, "seconds": time.time() - t_start}
