import pytest
import torch

from fau.model.scc import SCC, MaxOverNeighbours, NeighbourSumMax, NodeProjection, knn


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


def _nhwc_buffer(x: torch.Tensor) -> list[list[float]]:
    """Per sample, the values in TF's NHWC memory order, by explicit loops."""
    b, c, h, w = x.shape
    x = x.detach()
    return [[float(x[n, ch, i, j]) for i in range(h) for j in range(w) for ch in range(c)] for n in range(b)]


def test_released_layout_nodes_are_runs_of_the_nhwc_buffer_and_the_shape_is_restored():
    """The authors' reshape of an NHWC tensor to [B, C, -1]: node i is the
    i-th run of H*W consecutive values of the NHWC buffer."""
    m = SCC(4, 2, 3, k=2, layout="released")
    x = torch.randn(2, 4, 2, 3)
    nodes = m.to_nodes(x)
    buf = _nhwc_buffer(x)
    for n in range(2):
        for i in range(4):
            assert nodes[n, i].tolist() == pytest.approx(buf[n][i * 6:(i + 1) * 6], abs=0)
    assert not torch.equal(nodes, x.reshape(2, 4, 6))  # not the channel maps
    assert torch.equal(m.from_nodes(nodes, 2, 3), x)


@pytest.mark.parametrize("impl", ["literal", "factorised"])
def test_released_layout_output_matches_the_edgeconv_over_nhwc_runs(impl):
    """The whole module in the released layout, written out with loops over
    the NHWC buffer: node i = run i of H*W values, the k nearest runs, then
    max_j ReLU(BN(W [x_i, x_j - x_i])) written back as run i of the output's
    NHWC buffer."""
    torch.manual_seed(4)
    c, h, w, k = 6, 2, 3, 3
    m = SCC(c, h, w, k=k, impl=impl, layout="released").eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2.0)
    m.bn.weight.data.uniform_(-1.5, 1.5)
    m.bn.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, c, h, w)
    y = m(x)
    bn, d = m.bn, h * w
    for n, (buf_in, buf_out) in enumerate(zip(_nhwc_buffer(x), _nhwc_buffer(y))):
        nodes = torch.tensor(buf_in).reshape(c, d)
        for i in range(c):
            dist = ((nodes - nodes[i]) ** 2).sum(1)
            best = None
            for j in dist.argsort()[:k]:
                z = m.weight @ torch.cat([nodes[i], nodes[j] - nodes[i]])
                z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
                best = z.relu() if best is None else torch.maximum(best, z.relu())
            assert torch.allclose(torch.tensor(buf_out[i * d:(i + 1) * d]), best, atol=1e-5)


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


# ---------------------------------------------------------------- gradcheck
# Every hand-written backward of fau.model.scc against finite differences
# (float64, small sizes). Exactly tied maxima are two-way ties: the central
# difference then gives each tied input half the gradient, which is what the
# backward passes share out.


def _dbl(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def test_gradcheck_node_projection():
    x = _dbl(2, 5, 4, seed=1).requires_grad_(True)
    weight = _dbl(3, 8, seed=2).requires_grad_(True)  # (D', 2D)
    assert torch.autograd.gradcheck(NodeProjection.apply, (x, weight))


def _tied_features():
    """(B=1, N=4, F=3) node features with two-way ties in the max over neighbours."""
    q = _dbl(1, 4, 3, seed=3)
    q[0, 1, 0] = q[0, 2, 0] = 5.0  # nodes 1 and 2 tie as the largest feature 0
    q[0, 0, 2] = q[0, 3, 2] = 4.0  # nodes 0 and 3 tie as the largest feature 2
    idx = torch.tensor([[[0, 1, 2], [1, 2, 3], [2, 0, 1], [3, 0, 2]]])  # (1, 4, k=3): rows 0-2 hold 1 and 2, row 3 holds 0 and 3
    return q, idx


def test_gradcheck_neighbour_sum_max_with_tied_maxima():
    q, idx = _tied_features()
    s, m = NeighbourSumMax.apply(q, idx)
    assert m[0, 0, 0] == m[0, 1, 0] == 5.0 and m[0, 3, 2] == 4.0  # the ties are in the max
    assert torch.autograd.gradcheck(lambda v: NeighbourSumMax.apply(v, idx), (q.requires_grad_(True),))


def test_gradcheck_max_over_neighbours_with_tied_maxima():
    y = _dbl(2, 3, 4, 5, seed=4)  # (B, N, k, D')
    y[0, 0, 1, 2] = y[0, 0, 3, 2] = 9.0  # a two-way tie for the maximum
    y[1, 2, 0, 0] = y[1, 2, 2, 0] = 7.0
    assert MaxOverNeighbours.apply(y)[0, 0, 2] == 9.0
    assert torch.autograd.gradcheck(MaxOverNeighbours.apply, (y.requires_grad_(True),))


@pytest.mark.parametrize("impl", ["factorised", "literal"])
@pytest.mark.parametrize("layout", ["paper", "released"])
def test_gradcheck_whole_module_with_batchnorm_gamma_of_both_signs(impl, layout):
    """Input, edge weight, BN gamma and beta, in training mode (batch
    statistics): gamma < 0 turns the factorised max into a min."""
    torch.manual_seed(5)
    m = SCC(5, 2, 2, k=3, impl=impl, layout=layout).double().train()
    gamma = torch.tensor([1.3, -0.7, 0.4, -1.9], dtype=torch.float64, requires_grad=True)
    beta = _dbl(4, seed=6).requires_grad_(True)
    weight = m.weight.detach().clone().requires_grad_(True)
    x = _dbl(2, 5, 2, 2, seed=7).requires_grad_(True)

    def f(x, weight, gamma, beta):
        del m.weight, m.bn.weight, m.bn.bias
        m.weight, m.bn.weight, m.bn.bias = weight, gamma, beta  # plain tensors: gradcheck's inputs
        return m(x)

    assert torch.autograd.gradcheck(f, (x, weight, gamma, beta))
