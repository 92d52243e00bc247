"""Semantic correspondence convolution (SCC): EdgeConv over a dynamic kNN graph.

For each sample the graph's N nodes carry D features each (layout "paper":
the C channel maps of (B, C, H, W), D = H*W). Every forward pass finds each
node's k nearest nodes (top-k of the negative squared distance, so the node
itself is among them), forms edges e_ij = [x_i, x_j - x_i] (2D), maps them
with a shared linear W: 2D -> D' (no bias), applies BatchNorm over the D'
features, ReLU, and takes the max over the k neighbours.

Two implementations of the same function (`impl`):
- "literal": build the (B, N, k, 2D) edge tensor, project it (N k 2D D'
  multiply-adds per sample), BatchNorm over all edges, max over neighbours;
- "factorised": W e_ij = (Wa - Wb) x_i + Wb x_j with W = [Wa | Wb]; project
  each node once (2 N D D'); the BatchNorm statistics of all edges follow
  from per-node sums, and since BN is a per-feature affine map the max over
  neighbours is taken of the gathered Wb x_j alone (`SCC.factorised_max`),
  so no (B, N, k, D') tensor goes through BN.
Outputs, batch statistics, running statistics and gradients agree up to
float rounding (and the choice among exactly tied maxima).

Layout "released" reproduces the authors' TF code, which reshapes the NHWC
tensor to [B, C, -1] without a transpose: x is permuted to (B, H, W, C) and
reshaped to (B, C, H*W), so a "node" is a run of H*W consecutive NHWC values
rather than a channel map; the output is reshaped back the same way.
"""

from __future__ import annotations

import torch
from torch import nn

IMPLS = ("factorised", "literal")
LAYOUTS = ("paper", "released")


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each node's k nearest nodes (itself included).

    x: (B, N, D) -> (B, N, k) int64. Distances in float32 even under bf16
    autocast (bf16's 8-bit mantissa would reorder near neighbours).
    """
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):  # indices carry no gradient
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        inner = -2 * torch.matmul(x, x.transpose(2, 1))  # (B, N, N)
        xx = (x * x).sum(dim=-1, keepdim=True)  # (B, N, 1)
        neg_dist = -xx - inner - xx.transpose(2, 1)  # (B, N, N) = -||x_i - x_j||^2
        return neg_dist.topk(k=k, dim=-1)[1]  # (B, N, k)


def gather_nodes(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """v: (B, N, F), idx: (B, N, k) -> (B, N, k, F) with out[b, i, j] = v[b, idx[b, i, j]]."""
    b, n, f = v.shape
    k = idx.shape[-1]
    base = torch.arange(b, device=v.device).view(-1, 1, 1) * n  # (B, 1, 1)
    flat = (idx + base).reshape(-1)  # (B*N*k,)
    return v.reshape(b * n, f)[flat].view(b, n, k, f)  # (B, N, k, F)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in: the autocast dtype where autocast is on."""
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype


class NodeProjection(torch.autograd.Function):
    """Per-node halves of the edge projection W e_ij = (Wa - Wb) x_i + Wb x_j.

    x: (B, N, D), weight: (D', 2D) = [Wa | Wb] -> c = (Wa - Wb) x, p = Wb x,
    both (B, N, D'). The hand-written backward never materialises a
    zero-filled (D', 2D) gradient per half (autograd's slice backward would)
    nor a copy of [Wa - Wb | Wb]. Matmuls run in the autocast dtype where
    autocast is on (forward and backward alike), gradients come back in the
    inputs' dtypes.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor):
        dtype = compute_dtype(x)
        xd, w = x.to(dtype), weight.to(dtype)
        d = x.shape[-1]
        c = torch.matmul(xd, w[:, :d].t())  # (B, N, D'): Wa x
        p = torch.matmul(xd, w[:, d:].t())  # (B, N, D'): Wb x
        c.sub_(p)  # (B, N, D'): (Wa - Wb) x
        ctx.save_for_backward(xd, w)
        ctx.dtypes = (x.dtype, weight.dtype)
        return c, p

    @staticmethod
    def backward(ctx, g_c: torch.Tensor, g_p: torch.Tensor):
        xd, w = ctx.saved_tensors
        x_dtype, w_dtype = ctx.dtypes
        b, n, d = xd.shape
        dp = w.shape[0]
        g_a = g_c.to(w.dtype).reshape(b * n, dp)  # (B*N, D'): gradient of Wa x
        g_b = g_p.to(w.dtype).reshape(b * n, dp) - g_a  # (B*N, D'): gradient of Wb x
        x2 = xd.reshape(b * n, d)  # (B*N, D)
        grad_w = torch.empty_like(w)  # (D', 2D), both halves written in place (BLAS leading dim 2D)
        torch.mm(g_a.t(), x2, out=grad_w[:, :d])  # (D', D) = dL/dWa
        torch.mm(g_b.t(), x2, out=grad_w[:, d:])  # (D', D) = dL/dWb
        grad_x = torch.addmm(g_a @ w[:, :d], g_b, w[:, d:]).view(b, n, d)  # (B, N, D)
        return grad_x.to(x_dtype), grad_w.to(w_dtype)


class NeighbourSumMax(torch.autograd.Function):
    """Sum and max of node features over each node's neighbours.

    q: (B, N, F), idx: (B, N, k) -> s, m (B, N, F) with s_i = sum_j q_idx[i,j]
    and m_i = max_j q_idx[i,j]. The max's gradient goes to the maximal
    neighbour (shared equally on exact ties).
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, idx: torch.Tensor):
        g = gather_nodes(q, idx)  # (B, N, k, F)
        s = g.sum(dim=2)  # (B, N, F)
        m = g.amax(dim=2)  # (B, N, F)
        ctx.save_for_backward(g, m, idx)
        return s, m

    @staticmethod
    def backward(ctx, g_s: torch.Tensor, g_m: torch.Tensor):
        g, m, idx = ctx.saved_tensors
        b, n, k, f = g.shape
        mask = g == m.unsqueeze(2)  # (B, N, k, F) bool: the maximal neighbours
        ties = mask.sum(dim=2, dtype=g_m.dtype)  # (B, N, F) >= 1
        g_edge = mask * (g_m / ties).unsqueeze(2)  # (B, N, k, F)
        g_edge += g_s.unsqueeze(2)
        base = torch.arange(b, device=g.device).view(-1, 1, 1) * n  # (B, 1, 1)
        g_q = torch.zeros(b * n, f, dtype=g_edge.dtype, device=g.device)  # (B*N, F)
        g_q.index_add_(0, (idx + base).reshape(-1), g_edge.reshape(-1, f))  # sum over edges into node j
        return g_q.view(b, n, f), None


class MaxOverNeighbours(torch.autograd.Function):
    """max over the neighbour axis of (B, N, k, D') -> (B, N, D').

    Same values as `y.max(dim=2)[0]`; the gradient goes to the maximal edge
    (shared equally on exact ties, e.g. between dead, all-zero nodes). About
    2x faster than `max` with indices on CPU, whose strided arg-max
    reduction is slow."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        m = y.amax(dim=2)  # (B, N, D')
        ctx.save_for_backward(y, m)
        return m

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, m = ctx.saved_tensors
        mask = y == m.unsqueeze(2)  # (B, N, k, D') bool: the maximal edges
        ties = mask.sum(dim=2, keepdim=True, dtype=grad.dtype)  # (B, N, 1, D') >= 1
        return mask * (grad.unsqueeze(2) / ties)  # (B, N, k, D')


class SCC(nn.Module):
    """One SCC module over (B, C, H, W) feature maps (shape preserved)."""

    def __init__(self, channels: int, height: int, width: int, k: int = 7, impl: str = "factorised",
                 layout: str = "paper", bn_momentum: float = 0.1):
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"SCC impl {impl!r}; expected one of {IMPLS}")
        if layout not in LAYOUTS:
            raise ValueError(f"SCC layout {layout!r}; expected one of {LAYOUTS}")
        self.channels, self.height, self.width = channels, height, width
        self.k = min(k, channels)
        self.impl, self.layout = impl, layout
        d = height * width
        self.weight = nn.Parameter(torch.empty(d, 2 * d))  # (D', 2D) = [Wa | Wb], the edge 1x1 conv
        self.bn = nn.BatchNorm1d(d, momentum=bn_momentum)
        nn.init.xavier_uniform_(self.weight)  # DGCNN tf_util.conv2d default

    def extra_repr(self) -> str:
        return f"nodes={self.channels}, features={self.height * self.width}, k={self.k}, impl={self.impl}, " \
               f"layout={self.layout}"

    def to_nodes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N=C, D=HW)."""
        b, c, h, w = x.shape
        if self.layout == "paper":
            return x.reshape(b, c, h * w)  # (B, C, HW): node i = channel map i
        return x.permute(0, 2, 3, 1).reshape(b, c, h * w)  # (B, H, W, C) -> (B, C, HW) as the TF code

    def from_nodes(self, v: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, N=C, D=HW) -> (B, C, H, W), inverse of to_nodes."""
        b, c, _ = v.shape
        if self.layout == "paper":
            return v.reshape(b, c, h, w)  # (B, C, H, W)
        return v.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)

    def literal_edges(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The edge tensor, projected and batch-normalised: BN(W e_ij).
        x: (B, N, D), idx: (B, N, k) -> (B, N, k, D')."""
        b, n, k = idx.shape
        xj = gather_nodes(x, idx)  # (B, N, k, D)
        xi = x.unsqueeze(2).expand_as(xj)  # (B, N, k, D)
        edges = torch.cat([xi, xj - xi], dim=-1)  # (B, N, k, 2D)
        y = torch.matmul(edges, self.weight.t())  # (B, N, k, D')
        dp = y.shape[-1]
        return self.bn(y.reshape(b * n * k, dp)).view(b, n, k, dp)  # (B, N, k, D') BN over the D' features

    def factorised_max(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """max_j BN(W e_ij) without the edge tensor. x: (B, N, D), idx: (B, N, k) -> (B, N, D').

        With c_i = (Wa - Wb) x_i and p_j = Wb x_j, an edge is y_ij = c_i + p_j.
        The BN batch statistics over all B N k edges follow from per-node
        sums (cnt_j: how many edges end at node j; S_i = sum_j p_j over i's
        neighbours; centred by mc = mean c, mg = the cnt-weighted mean p):
            mean = mc + mg
            var  = (k sum cc^2 + 2 sum cc_i (S_i - k mg) + sum cnt_j gc_j^2) / (B N k)
        and BN is the per-feature affine a y + (beta - a mean), a = gamma / std,
        so max_j a (c_i + p_j) = a c_i + a s max_j (s p_j) with s = sign(gamma).
        Same function (and gradients, by autograd) as BN over `literal_edges`
        followed by the max; running statistics are updated the same way.
        """
        bn = self.bn
        b, n, k = idx.shape
        c, p = NodeProjection.apply(x, self.weight)  # (B, N, D') each, in the compute dtype
        dtype = torch.promote_types(c.dtype, torch.float32)  # statistics in >= float32 (bf16 autocast too)
        c, p = c.to(dtype), p.to(dtype)
        gamma, beta = bn.weight, bn.bias  # (D',)
        sign = torch.where(gamma.detach() >= 0, 1.0, -1.0).to(dtype)  # (D',)
        s_q, m_q = NeighbourSumMax.apply(p * sign, idx)  # (B, N, D'): sum and max of s p over the neighbours
        if bn.training or bn.running_mean is None:
            edges = b * n * k
            base = torch.arange(b, device=x.device).view(-1, 1, 1) * n  # (B, 1, 1)
            cnt = torch.zeros(b * n, dtype=dtype, device=x.device).index_add_(
                0, (idx + base).reshape(-1), torch.ones(edges, dtype=dtype, device=x.device)).view(b, n, 1)  # (B, N, 1)
            mc = c.mean(dim=(0, 1))  # (D',)
            mg = (cnt * p).sum(dim=(0, 1)) / edges  # (D',)
            mean = mc + mg  # (D',)
            cc, gc = c - mc, p - mg  # (B, N, D') centred
            cross = cc * (s_q * sign - k * mg)  # (B, N, D'): cc_i * sum_j gc_j
            var = (k * (cc * cc).sum(dim=(0, 1)) + 2 * cross.sum(dim=(0, 1))
                   + (cnt * gc * gc).sum(dim=(0, 1))) / edges  # (D',) biased, as BN normalises
            var = var.clamp_min(0.0)
            if bn.training and bn.track_running_stats:
                self._update_running_stats(mean.detach(), var.detach(), edges)
        else:
            mean, var = bn.running_mean, bn.running_var
        a = gamma * torch.rsqrt(var + bn.eps)  # (D',)
        return a * c + (beta - a * mean) + (a * sign) * m_q  # (B, N, D')

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """As nn.BatchNorm1d in training mode (unbiased variance into running_var)."""
        bn = self.bn
        bn.num_batches_tracked.add_(1)
        factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        bn.running_mean.lerp_(mean, factor)
        bn.running_var.lerp_(var * count / max(count - 1, 1), factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W)
        nodes = self.to_nodes(x)  # (B, N, D)
        idx = knn(nodes, self.k)  # (B, N, k)
        if self.impl == "literal":
            y = MaxOverNeighbours.apply(self.literal_edges(nodes, idx))  # (B, N, D') max over neighbours
        else:
            y = self.factorised_max(nodes, idx)  # (B, N, D') the same, without the edge tensor
        return self.from_nodes(torch.relu(y), h, w)  # (B, C, H, W); ReLU after the max (monotone)
