import pytest
import torch

from fau.config import ModelConfig, SCCConfig
from fau.errors import FauError
from fau.model import build_model, count_parameters
from fau.model.scc import SCC


def resnet50_torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of torchvision's resnet50().state_dict()."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for n in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{n}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes["fc.weight"] = (1000, 2048)
    shapes["fc.bias"] = (1000,)
    return shapes


def _state(shapes: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
            for k, s in shapes.items()}


@pytest.mark.parametrize("layout", ["paper", "released"])
def test_head_has_the_tf_heads_trainable_parameters(layout):
    model = build_model(ModelConfig(backbone="resnet50", input_size=256, scc=SCCConfig(layout=layout)), 10)
    assert count_parameters(model.head) == 44_838_922
    scc = [m for m in model.head.modules() if isinstance(m, SCC)]
    assert [m.weight.shape for m in scc] == [(256, 512), (1024, 2048), (4096, 8192)]
    assert count_parameters(model.backbone) == 23_508_032  # torchvision resnet50 without fc


def test_scc_can_be_switched_off_for_the_ablation():
    model = build_model(ModelConfig(backbone="resnet50", scc=SCCConfig(enabled=False)), 10)
    assert not any(isinstance(m, SCC) for m in model.modules())
    scc_params = 256 * 512 + 2 * 256 + 1024 * 2048 + 2 * 1024 + 4096 * 8192 + 2 * 4096
    assert count_parameters(model.head) == 44_838_922 - scc_params


def test_stage_shapes_at_input_256():
    model = build_model(ModelConfig(backbone="resnet50", input_size=256), 10).eval()
    shapes = []
    for stage in model.head.stages:
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert shapes == [(1, 256, 16, 16), (1, 128, 32, 32), (1, 64, 64, 64)]
    assert out.shape == (1, 10, 64, 64)


def test_small_default_output_is_a_quarter_of_the_input():
    model = build_model(ModelConfig(backbone="resnet18", input_size=128), 24).train()
    out = model(torch.randn(2, 3, 128, 128))
    assert out.shape == (2, 24, 32, 32)


def test_torchvision_resnet50_state_dict_loads_with_fc_ignored(tmp_path):
    shapes = resnet50_torchvision_shapes()
    state = _state(shapes)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    model = build_model(ModelConfig(backbone="resnet50", input_size=64, backbone_weights=str(path)), 10)
    own = model.backbone.state_dict()
    assert set(own) == set(shapes) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(own[k], state[k]) for k in own)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("layer3.2.bn2.running_var"), "missing keys"),
    (lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}), "unexpected keys"),
    (lambda s: s.update({"conv1.weight": torch.zeros(64, 3, 3, 3)}), "wrong shape"),
])
def test_mismatched_weights_file_is_a_clear_error(tmp_path, change, message):
    state = _state(resnet50_torchvision_shapes())
    change(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(FauError, match=rf"bad\.pth: .*{message}"):
        build_model(ModelConfig(backbone="resnet50", input_size=64, backbone_weights=str(path)), 10)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FauError, match="nope.pth: backbone weights file not found"):
        build_model(ModelConfig(backbone="resnet18", input_size=64, backbone_weights=str(tmp_path / "nope.pth")), 4)
