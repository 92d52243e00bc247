"""ResNet v1 backbones (torchvision's layout, without the classifier).

Module and parameter names follow torchvision's `resnet18/34/50` (conv1, bn1,
layer1..layer4, `downsample.0/1`), so torchvision's ImageNet state dict file
loads with `load_backbone_weights` (its `fc.*` keys are ignored). The
forward pass returns the last stage: (B, 512 or 2048, S/32, S/32).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import FauError


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck as in torchvision (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


SPECS: dict[str, tuple[type, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk: (B, 3, S, S) -> (B, out_channels, S/32, S/32).

    `width`: channels of the first stage (64 in ResNet; the stages have
    width, 2, 4 and 8 x width). A narrower trunk (e.g. 32: a quarter of the
    multiply-adds) is for small CPU runs; torchvision's weights need 64."""

    def __init__(self, block: type, layers: tuple[int, ...], width: int = 64):
        super().__init__()
        self.width = width
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.out_channels = 8 * width * block.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, S/4, S/4)
        x = self.layer2(self.layer1(x))  # (B, 128 e, S/8, S/8)
        return self.layer4(self.layer3(x))  # (B, 512 e, S/32, S/32)


def resnet(name: str, width: int = 64) -> ResNet:
    """'resnet18' | 'resnet34' | 'resnet50', randomly initialised."""
    if name not in SPECS:
        raise FauError(f"config key 'model.backbone' is {name!r}; expected one of {', '.join(SPECS)}")
    block, layers = SPECS[name]
    return ResNet(block, layers, width)


def load_backbone_weights(backbone: ResNet, path: str | Path) -> None:
    """Load a torchvision-layout state dict file into the backbone (its
    `fc.*` keys are ignored); FauError naming the file on any mismatch."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FauError(f"{path}: backbone weights file not found (model.backbone_weights)") from None
    except Exception as e:  # unpickling errors come in many types
        raise FauError(f"{path}: not a loadable PyTorch state dict ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FauError(f"{path}: expected a state dict (mapping of names to tensors), got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise FauError(f"{path}: does not match the {type(backbone).__name__} backbone: {'; '.join(parts)} "
                       "(is model.backbone the architecture of this file?)")
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise FauError(f"{path}: {len(bad)} tensors have the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                       f"model {tuple(own[k].shape)})")
    backbone.load_state_dict(state, strict=True)
