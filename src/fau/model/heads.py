"""Simple-Baselines-style head: three deconvolution stages, each followed by
an SCC module, then a 1x1 convolution to one heatmap per AU point."""

from __future__ import annotations

import torch
from torch import nn

from .scc import SCC


class DeconvSCCHead(nn.Module):
    """(B, C_in, S/32, S/32) -> (B, n_points, S/4, S/4).

    Stage i: ConvTranspose2d 4x4 stride 2 (no bias) + BN + ReLU, then SCC
    over the stage's (channels x (S/2^(4-i))^2) maps (unless scc_enabled is
    False: the ablation without SCC).
    """

    def __init__(self, in_channels: int, in_size: int, channels: tuple[int, ...], n_points: int, *,
                 scc_enabled: bool = True, k: int = 7, impl: str = "factorised", layout: str = "paper",
                 bn_momentum: float = 0.1):
        super().__init__()
        stages = []
        size, cin = in_size, in_channels
        for cout in channels:
            size *= 2
            stage = nn.Sequential()
            stage.add_module("deconv", nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False))
            stage.add_module("bn", nn.BatchNorm2d(cout, momentum=bn_momentum))
            stage.add_module("relu", nn.ReLU(inplace=True))
            if scc_enabled:
                stage.add_module("scc", SCC(cout, size, size, k=k, impl=impl, layout=layout, bn_momentum=bn_momentum))
            stages.append(stage)
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.final = nn.Conv2d(cin, n_points, 1)
        for m in self.modules():  # Simple Baselines' init
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x)  # (B, C_last, S/4, S/4)
        return self.final(x)  # (B, n_points, S/4, S/4)
