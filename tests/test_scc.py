import pytest
import torch

from fau.model.scc import SCC, knn


def _pair(layout: str, c=12, h=4, w=5, k=5, seed=0):
    torch.manual_seed(seed)
    lit = SCC(c, h, w, k=k, impl="literal", layout=layout)
    fac = SCC(c, h, w, k=k, impl="factorised", layout=layout)
    fac.load_state_dict(lit.state_dict())
    return lit, fac


@pytest.mark.parametrize("layout", ["paper", "released"])
def test_literal_and_factorised_give_the_same_outputs_and_gradients(layout):
    lit, fac = _pair(layout)
    lit.train(), fac.train()
    x = torch.randn(3, 12, 4, 5)
    g = torch.randn(3, 12, 4, 5)
    outs, grads = [], []
    for m in (lit, fac):
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        (y * g).sum().backward()
        outs.append(y.detach())
        grads.append([xi.grad, m.weight.grad, m.bn.weight.grad, m.bn.bias.grad])
    assert outs[0].shape == x.shape
    scale = outs[0].abs().max()
    assert (outs[0] - outs[1]).abs().max() <= 1e-4 * scale
    for a, b in zip(*grads):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    # Same batch statistics went into the running averages.
    assert torch.allclose(lit.bn.running_mean, fac.bn.running_mean, atol=1e-5, rtol=1e-4)
    assert torch.allclose(lit.bn.running_var, fac.bn.running_var, atol=1e-5, rtol=1e-4)


def test_knn_includes_the_node_itself_and_the_nearest_nodes():
    x = torch.tensor([[[0.0], [1.0], [10.0], [11.5], [30.0]]])  # (B=1, N=5, D=1)
    idx = knn(x, 2)
    assert [sorted(r) for r in idx[0].tolist()] == [[0, 1], [0, 1], [2, 3], [2, 3], [3, 4]]


@pytest.mark.parametrize("impl", ["literal", "factorised"])
def test_output_matches_the_edgeconv_definition_node_by_node(impl):
    """max_j ReLU(BN(W [x_i, x_j - x_i])) over the k nearest channel maps
    (eval-mode BN with set statistics), written out with loops."""
    torch.manual_seed(1)
    m = SCC(6, 3, 3, k=3, impl=impl, layout="paper").eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2.0)
    m.bn.weight.data.uniform_(0.5, 1.5)
    m.bn.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, 6, 3, 3)
    y = m(x)
    bn = m.bn
    for b in range(2):
        nodes = x[b].reshape(6, 9)
        for i in range(6):
            d = ((nodes - nodes[i]) ** 2).sum(1)
            nbrs = d.argsort()[:3]
            best = None
            for j in nbrs:
                e = torch.cat([nodes[i], nodes[j] - nodes[i]])
                z = m.weight @ e
                z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
                z = torch.relu(z)
                best = z if best is None else torch.maximum(best, z)
            assert torch.allclose(y[b, i].reshape(9), best, atol=1e-5)


def test_released_layout_uses_the_nhwc_reshape_and_restores_the_shape():
    m = SCC(4, 2, 3, k=2, layout="released")
    x = torch.arange(2 * 4 * 2 * 3, dtype=torch.float32).reshape(2, 4, 2, 3)
    nodes = m.to_nodes(x)
    assert torch.equal(nodes, x.permute(0, 2, 3, 1).reshape(2, 4, 6))
    assert not torch.equal(nodes, x.reshape(2, 4, 6))
    assert torch.equal(m.from_nodes(nodes, 2, 3), x)


def test_paper_layout_is_equivariant_to_permuting_channels():
    torch.manual_seed(2)
    m = SCC(8, 3, 3, k=3).eval()
    x = torch.randn(2, 8, 3, 3)
    perm = torch.randperm(8)
    assert torch.allclose(m(x)[:, perm], m(x[:, perm]), atol=1e-5)


def test_factorised_under_bf16_autocast_trains_close_to_float32():
    """The path CUDA training takes with `train.bf16` (exercised here with CPU
    autocast): matmuls in bf16, batch statistics in float32, gradients in the
    parameters' dtype."""
    lit, fac = _pair("paper", c=16, h=6, w=6, k=4)
    x = torch.randn(2, 16, 6, 6).relu()
    g = torch.randn(2, 16, 6, 6)
    ref = lit(x)
    xi = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fac(xi)
    (y.float() * g).sum().backward()
    assert fac.weight.grad.dtype == torch.float32 and xi.grad.dtype == torch.float32
    assert torch.isfinite(fac.weight.grad).all() and torch.isfinite(xi.grad).all()
    assert (y.float() - ref).abs().max() <= 0.05 * ref.abs().max()  # bf16 has ~3 significant digits
    assert torch.allclose(fac.bn.running_mean, lit.bn.running_mean, rtol=0.05, atol=0.05 * lit.bn.running_mean.abs().max())


def test_knn_under_bf16_autocast_finds_the_float32_neighbours():
    torch.manual_seed(3)
    x = torch.randn(2, 64, 256) + 5.0  # near-equal distances: bf16 matmuls would reorder them
    want = knn(x, 7).sort(dim=-1)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = knn(x, 7).sort(dim=-1)[0]
        got_bf16_input = knn(x.bfloat16(), 7).sort(dim=-1)[0]
    assert torch.equal(got, want)
    assert (got_bf16_input == want).float().mean() > 0.9  # bf16 inputs: only their own rounding
