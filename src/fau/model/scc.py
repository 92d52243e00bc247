"""Semantic correspondence convolution (SCC): EdgeConv over a dynamic kNN graph.

For each sample the graph's N nodes carry D features each (layout "paper":
the C channel maps of (B, C, H, W), D = H*W). Every forward pass finds each
node's k nearest nodes (top-k of the negative squared distance, so the node
itself is among them), forms edges e_ij = [x_i, x_j - x_i] (2D), maps them
with a shared linear W: 2D -> D' (no bias), applies BatchNorm over the D'
features, ReLU, and takes the max over the k neighbours.

Two implementations of the same function (`impl`):
- "literal": build the (B, N, k, 2D) edge tensor, then project (N k 2D D'
  multiply-adds per sample);
- "factorised": W e_ij = (Wa - Wb) x_i + Wb x_j with W = [Wa | Wb]; project
  each node once (2 N D D'), gather the neighbours' projections, add.
Both feed the same (B, N, k, D') tensor to BatchNorm, so outputs, batch
statistics and gradients agree up to float rounding.

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

    x: (B, N, D) -> (B, N, k) int64.
    """
    with torch.no_grad():  # indices carry no gradient
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


class FactorisedEdgeProjection(torch.autograd.Function):
    """W e_ij = (Wa - Wb) x_i + Wb x_j for all edges, with a hand-written
    backward that never materialises a zero-filled (D', 2D) gradient per half
    (autograd's slice backward would) nor a copy of [Wa - Wb | Wb].

    x: (B, N, D), weight: (D', 2D) = [Wa | Wb], idx: (B, N, k) -> (B, N, k, D').
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        wa, wb = weight[:, :d], weight[:, d:]  # (D', D) views, no copies
        pa = torch.matmul(x, wa.t())  # (B, N, D'): Wa x_i
        pb = torch.matmul(x, wb.t())  # (B, N, D'): Wb x_j
        ctx.save_for_backward(x, weight, idx)
        return (pa - pb).unsqueeze(2) + gather_nodes(pb, idx)  # (B, N, k, D')

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, idx = ctx.saved_tensors
        b, n, k, dp = grad.shape
        d = x.shape[-1]
        g_centre = grad.sum(dim=2)  # (B, N, D'): d/d(Wa - Wb) x_i
        base = torch.arange(b, device=x.device).view(-1, 1, 1) * n  # (B, 1, 1)
        g_neigh = torch.zeros(b * n, dp, dtype=grad.dtype, device=grad.device)  # (B*N, D')
        g_neigh.index_add_(0, (idx + base).reshape(-1), grad.reshape(-1, dp))  # sum over edges into x_j
        g_a = g_centre.reshape(b * n, dp)  # (B*N, D'): gradient of Wa x
        g_b = g_neigh - g_a  # (B*N, D'): gradient of Wb x
        x2 = x.reshape(b * n, d)  # (B*N, D)
        grad_w = torch.empty_like(weight)  # (D', 2D), both halves written in place (BLAS leading dim 2D)
        torch.mm(g_a.t(), x2, out=grad_w[:, :d])  # (D', D) = dL/dWa
        torch.mm(g_b.t(), x2, out=grad_w[:, d:])  # (D', D) = dL/dWb
        grad_x = (g_a @ weight[:, :d] + g_b @ weight[:, d:]).view(b, n, d)  # (B, N, D)
        return grad_x, grad_w, None


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

    def edge_projection(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """W e_ij for every edge. x: (B, N, D), idx: (B, N, k) -> (B, N, k, D')."""
        if self.impl == "literal":
            xj = gather_nodes(x, idx)  # (B, N, k, D)
            xi = x.unsqueeze(2).expand_as(xj)  # (B, N, k, D)
            edges = torch.cat([xi, xj - xi], dim=-1)  # (B, N, k, 2D)
            return torch.matmul(edges, self.weight.t())  # (B, N, k, D')
        return FactorisedEdgeProjection.apply(x, self.weight, idx)  # (B, N, k, D')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W)
        nodes = self.to_nodes(x)  # (B, N, D)
        idx = knn(nodes, self.k)  # (B, N, k)
        y = self.edge_projection(nodes, idx)  # (B, N, k, D')
        n, k, dp = y.shape[1:]
        y = self.bn(y.reshape(b * n * k, dp)).view(b, n, k, dp)  # (B, N, k, D') BN over the D' features
        y = torch.relu(MaxOverNeighbours.apply(y))  # (B, N, D') max over neighbours, then ReLU (monotone)
        return self.from_nodes(y, h, w)  # (B, C, H, W)
