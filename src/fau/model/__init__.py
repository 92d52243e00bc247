"""The SCC heatmap network: ResNet backbone -> deconv + SCC head -> heatmaps.

`build_model(model_cfg, n_points)` is the one entry point; `FauNet` keeps
backbone and head separate (Simple Baselines' layout), so backbone weights
load by torchvision key names.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import FauError
from .backbone import ResNet, load_backbone_weights, resnet
from .heads import DeconvSCCHead
from .scc import SCC

STRIDE = 4  # input / heatmap size

__all__ = ["FauNet", "SCC", "STRIDE", "build_model", "count_parameters", "train_step_seconds"]


class FauNet(nn.Module):
    """(B, 3, S, S) -> heatmaps (B, n_points, S/4, S/4)."""

    def __init__(self, backbone: ResNet, head: DeconvSCCHead, output_scale: float = 1.0):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.output_scale = float(output_scale)  # model.output_scale: heatmaps keep their units

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(x))  # (B, 3, S, S) -> (B, C, S/32, S/32) -> (B, P, S/4, S/4)
        return out * self.output_scale if self.output_scale != 1.0 else out


def build_model(model_cfg: ModelConfig, n_points: int) -> FauNet:
    """The network of `model_cfg` with one output heatmap per AU point; loads
    `model_cfg.backbone_weights` (torchvision layout) when set."""
    backbone = resnet(model_cfg.backbone, model_cfg.width)
    if model_cfg.backbone_weights:
        if model_cfg.width != 64:
            raise FauError(f"config key 'model.width' is {model_cfg.width}; pretrained weights "
                           f"(model.backbone_weights) need the standard width 64")
        load_backbone_weights(backbone, model_cfg.backbone_weights)
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = model_cfg.bn_momentum
    scc = model_cfg.scc
    head = DeconvSCCHead(backbone.out_channels, model_cfg.input_size // 32, tuple(model_cfg.head_channels), n_points,
                         scc_enabled=scc.enabled, k=scc.k, impl=scc.impl, layout=scc.layout,
                         bn_momentum=model_cfg.bn_momentum)
    return FauNet(backbone, head, model_cfg.output_scale)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BN gamma and beta included, running stats not)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def train_step_seconds(model_cfg: ModelConfig, n_points: int = 10, batch_size: int = 2, repeats: int = 3,
                       device: str = "cpu", seed: int = 0) -> float:
    """Median wall time of one forward + backward (MSE loss) per image, after
    one warm-up step (for benchmarks)."""
    torch.manual_seed(seed)
    model = build_model(model_cfg, n_points).to(device).train()
    s = model_cfg.input_size
    x = torch.randn(batch_size, 3, s, s, device=device)  # (B, 3, S, S)
    target = torch.rand(batch_size, n_points, s // STRIDE, s // STRIDE, device=device)  # (B, P, S/4, S/4)
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = nn.functional.mse_loss(model(x), target)
        loss.backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] / batch_size
