"""One training step of the full model with and without SCC.

    python benchmarks/train_step.py [--quick] [--device auto|cpu|cuda] [--paper-batch 4]

A training step as `fau.train` runs it: zero_grad, forward, MSE loss,
backward, Adam step (the training optimizer, `fau.train.make_optimizer`).
Models: the paper size (ResNet-50, input 256) and the embedded default
(config/config.yaml: a ResNet-18 trunk of width 48, input 64, head
64-64-64), each without SCC, with the factorised SCC and with the literal
SCC (same seed, so same backbone weights). The three variants' repeats are
interleaved; the median is taken. Beside the measured ratios: forward
multiply-adds counted by hooks on Conv2d / ConvTranspose2d / Linear plus the
SCC's formula.

On CPU the step runs as the pipeline runs it there
(`fau.train.deterministic()`, as `fau.train.train_fold` runs them).
CPU batch: 4 at paper size (--paper-batch; the paper's 16 takes minutes per
literal step on 2 cores), the embedded default's 16.

Bar (CPU): step time with the factorised SCC / without SCC <= 1.5 (counted at
paper size: 1.40); the literal SCC's ratio is printed beside it (counted 3.8).
On CUDA: images/s of training and inference at paper size, batch 16, fp32
and bf16 autocast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys

import _common as C
import torch
from torch import nn

from fau.config import ModelConfig, load_config
from fau.model import STRIDE, build_model
from fau.train import deterministic, make_optimizer

BAR = 1.5
VARIANTS = ("no SCC", "factorised", "literal")


def model_configs() -> dict[str, ModelConfig]:
    embedded = load_config([C.ROOT / "config" / "config.yaml"])
    return {"paper": ModelConfig(), "embedded": embedded.model}


def n_points() -> int:
    return 2 * len(load_config([C.ROOT / "config" / "config.yaml"]).dataset.aus)


def variant_cfg(cfg: ModelConfig, variant: str) -> ModelConfig:
    if variant == "no SCC":
        return dataclasses.replace(cfg, scc=dataclasses.replace(cfg.scc, enabled=False))
    return dataclasses.replace(cfg, scc=dataclasses.replace(cfg.scc, enabled=True, impl=variant))


class Trainer:
    """A model, its optimizer and one fixed batch."""

    def __init__(self, cfg: ModelConfig, points: int, batch: int, device: str, bf16: bool = False, seed: int = 0):
        torch.manual_seed(seed)
        self.model = build_model(cfg, points).to(device).train()
        self.opt = make_optimizer(self.model, 5e-4, 1e-5)
        gen = torch.Generator().manual_seed(seed + 1)
        s = cfg.input_size
        self.x = torch.randn(batch, 3, s, s, generator=gen).to(device)  # (B, 3, S, S)
        self.target = (255 * torch.rand(batch, points, s // STRIDE, s // STRIDE, generator=gen)).to(device)
        self.device, self.bf16 = device, bf16

    def autocast(self):
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.model(self.x)  # (B, P, S/4, S/4)
        loss = nn.functional.mse_loss(out.float(), self.target)
        loss.backward()
        self.opt.step()

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            self.model(self.x)


def counted_macs(cfg: ModelConfig, points: int) -> dict[str, float]:
    """Forward multiply-adds per image (G), by module kind."""
    torch.manual_seed(0)
    model = build_model(cfg, points).eval()
    x = torch.zeros(1, 3, cfg.input_size, cfg.input_size)
    with C.MacCounter(model) as mc, torch.no_grad():
        model(x)
    out = {k: v / 1e9 for k, v in mc.by_kind.items()}
    out["total"] = mc.total / 1e9
    return out


def cpu_run(quick: bool, paper_batch: int) -> bool:
    cfgs, points = model_configs(), n_points()
    ok = True
    with deterministic():  # as fau.train.train_fold runs CPU training
        for size, cfg in cfgs.items():
            batch = paper_batch if size == "paper" else 16
            label = f"{size}: {cfg.backbone}, input {cfg.input_size}, batch {batch}"
            macs = {v: counted_macs(variant_cfg(cfg, v), points) for v in VARIANTS}
            trainers = {v: Trainer(variant_cfg(cfg, v), points, batch, "cpu") for v in VARIANTS}
            repeats, warmup = (3, 1) if quick else (5, 1)  # the median survives one (quick) or two noisy rounds
            t = C.time_interleaved({v: tr.train_step for v, tr in trainers.items()}, repeats, warmup, "cpu",
                                   progress=f"cpu {size}")
            base_t, base_m = C.median(t["no SCC"]), macs["no SCC"]["total"]
            rows = []
            for v in VARIANTS:
                m = macs[v]
                rows.append({"variant": v, "conv G": m.get("conv", 0.0), "deconv G": m.get("deconv", 0.0),
                             "SCC G": m.get("scc", 0.0), "fwd GMAC/img": m["total"],
                             "counted ratio": m["total"] / base_m,
                             "step s": C.median(t[v]), "repeats s": C.spread(t[v]),
                             "measured ratio": C.median(t[v]) / base_t})
            C.heading(f"training step on cpu, {label} (ratio = variant / no SCC; counted = forward "
                      f"multiply-adds per image)")
            print(C.table(rows))
            r = {row["variant"]: row for row in rows}
            fac, lit = r["factorised"], r["literal"]
            ok &= C.bar(f"train_step[cpu, {size}] factorised / no SCC", fac["measured ratio"], BAR, "<=",
                        note=f"counted {fac['counted ratio']:.2f}; literal measured {lit['measured ratio']:.2f} "
                             f"(counted {lit['counted ratio']:.2f})")
            del trainers
            gc.collect()
    return ok


def cuda_run(quick: bool) -> None:
    cfg, points, batch = ModelConfig(), n_points(), 16
    rows = []
    for bf16 in (False, True):
        trainers = {v: Trainer(variant_cfg(cfg, v), points, batch, "cuda", bf16) for v in VARIANTS}
        repeats, warmup = (3, 2) if quick else (10, 3)
        tt = C.time_interleaved({v: tr.train_step for v, tr in trainers.items()}, repeats, warmup, "cuda",
                                progress=f"cuda train{' bf16' if bf16 else ''}")
        ti = C.time_interleaved({v: tr.infer for v, tr in trainers.items()}, repeats, warmup, "cuda",
                                progress=f"cuda infer{' bf16' if bf16 else ''}")
        for v in VARIANTS:
            rows.append({"precision": "bf16 autocast" if bf16 else "fp32", "variant": v,
                         "train img/s": batch / C.median(tt[v]), "infer img/s": batch / C.median(ti[v]),
                         "train step ratio": C.median(tt[v]) / C.median(tt["no SCC"]),
                         "infer ratio": C.median(ti[v]) / C.median(ti["no SCC"])})
        del trainers
        gc.collect()
        torch.cuda.empty_cache()
    C.heading(f"CUDA ({C.gpu_info()}), paper size (resnet50, input 256), batch {batch}: images/s")
    print(C.table(rows))


def main() -> int:
    ap = C.parser(__doc__)
    ap.add_argument("--paper-batch", type=int, default=4, help="CPU batch at paper size (default 4)")
    args = ap.parse_args()
    C.setup_threads(args.threads)
    print(f"training step, full model; {C.cpu_info()}")
    ok = True
    for device in C.devices(args.device):
        if device == "cpu":
            ok &= cpu_run(args.quick, args.paper_batch)
        else:
            cuda_run(args.quick)
    return 0 if ok else 1  # a failed bar fails the script


if __name__ == "__main__":
    sys.exit(main())
