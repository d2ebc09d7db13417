"""Sums over a Stein kernel matrix computed block by block: O(block²) memory instead of O(n²).

The (n, n) matrices U_k[i, j] = u_k(x_i, x_j) of K Stein kernels are never formed. Rows are
cut into blocks of b rows; each block pair (I, J) with I <= J is computed once (U is symmetric;
an off-diagonal block counts twice) and gives, for every kernel,

* the total Σ_ij U[i, j] (with or without the diagonal),
* the row sums Σ_j U[i, j] (for the variance of a U-statistic),
* the quadratic forms Σ_ij w_ib U[i, j] w_jb of B weight vectors (the wild bootstrap),

so the memory is O(b² + b·B) beyond the weights themselves, and b comes from a byte budget.

Example:
    >>> import torch
    >>> from steinkit.kernels import IMQ
    >>> x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> w = torch.ones(50, 1, dtype=torch.float64)
    >>> totals, forms, _ = symmetric_sums([IMQ(1.0)], x, -x, weights=w, block=16)
    >>> bool(torch.allclose(totals, IMQ(1.0).stein_matrix(x, -x, x, -x).sum()))
    True
    >>> bool(torch.allclose(forms[:, 0], totals))   # all weights 1: the form is the total
    True
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..kernels.base import stein_blocks

__all__ = ["BLOCK_BYTES", "block_rows", "block_bytes", "symmetric_sums", "column_sums"]

BLOCK_BYTES = 2**28  # the working memory of one block pair (256 MiB)
_MATRICES = 12  # (b, b) float64 matrices alive at once: the pieces, one kernel's block, temporaries


def block_rows(n: int, draws: int = 0, budget: int | None = None) -> int:
    """Rows b per block so that a block pair's working set (12 b² + 2 b B doubles) fits ``budget``
    bytes (default :data:`BLOCK_BYTES`); at least 64 and at most n.

    Example:
        >>> block_rows(10**6), block_rows(10**6, draws=4000), block_rows(100)
        (1672, 1371, 100)
    """
    budget = BLOCK_BYTES if budget is None else budget
    a, c = _MATRICES, 2.0 * draws
    b = int((-c + math.sqrt(c * c + 4.0 * a * budget / 8.0)) / (2.0 * a))
    return max(1, min(n, max(64, b)))


def block_bytes(b: int, draws: int = 0) -> float:
    """Bytes of one block pair's working set for b rows and B draws (see :func:`block_rows`).

    Example:
        >>> block_bytes(1000) / 2**20
        91.552734375
    """
    return 8.0 * (_MATRICES * b * b + 2.0 * b * draws)


def symmetric_sums(
    kernels: Sequence[object],
    x: Tensor,
    s: Tensor,
    *,
    weights: Tensor | None = None,
    diagonal: bool = True,
    rows: bool = False,
    block: int | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Totals, quadratic forms and row sums of the Stein matrices of ``kernels`` on (x, s).

    Arguments:
        kernels: K Stein kernels with fixed bandwidths.
        x, s: float64 data and scores, (n, d), on one device (centred x helps accuracy).
        weights: (n, B) weight vectors, or None.
        diagonal: include the terms i = j.
        rows: also return the row sums.
        block: rows per block (default from :func:`block_rows`, and at most max(128, n / 8)).

    Returns:
        (totals (K,), forms (K, B) or None, row sums (K, n) or None), float64.
    """
    n = x.shape[0]
    draws = 0 if weights is None else weights.shape[1]
    # at least min(8, n / 128) blocks: the lower block triangle is skipped (about 44% of the work at 8)
    b = min(block_rows(n, draws), max(128, -(-n // 8))) if block is None else block
    kw = dict(dtype=torch.float64, device=x.device)
    totals = torch.zeros(len(kernels), **kw)
    forms = None if weights is None else torch.zeros(len(kernels), draws, **kw)
    row_sums = torch.zeros(len(kernels), n, **kw) if rows else None
    for a0 in range(0, n, b):
        a1 = min(a0 + b, n)
        for c0 in range(a0, n, b):
            c1 = min(c0 + b, n)
            same = c0 == a0
            twice = 1.0 if same else 2.0
            blocks = stein_blocks(kernels, x[a0:a1], s[a0:a1], x[c0:c1], s[c0:c1])
            for k, u in enumerate(blocks):
                if same and not diagonal:
                    u.fill_diagonal_(0.0)
                totals[k] += twice * u.sum()
                if forms is not None:
                    forms[k] += twice * (u @ weights[c0:c1]).mul_(weights[a0:a1]).sum(0)
                if row_sums is not None:
                    row_sums[k, a0:a1] += u.sum(1)
                    if not same:
                        row_sums[k, c0:c1] += u.sum(0)
                del u
    return totals, forms, row_sums


def column_sums(
    kernels: Sequence[object], a: Tensor, sa: Tensor, b: Tensor, sb: Tensor, *, block: int | None = None
) -> Tensor:
    """(K, m) Σ_i u_k(a_i, b_j): column sums of the (n_a, m) Stein matrices, block by block.

    Example:
        >>> import torch
        >>> from steinkit.kernels import Gaussian
        >>> a, b = torch.randn(30, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
        >>> full = Gaussian(1.0).stein_matrix(a, -a, b, -b).sum(0)
        >>> bool(torch.allclose(column_sums([Gaussian(1.0)], a, -a, b, -b, block=4)[0], full))
        True
    """
    rows = block_rows(max(a.shape[0], b.shape[0])) if block is None else block
    out = torch.zeros(len(kernels), b.shape[0], dtype=torch.float64, device=a.device)
    for a0 in range(0, a.shape[0], rows):
        a1 = min(a0 + rows, a.shape[0])
        for c0 in range(0, b.shape[0], rows):
            c1 = min(c0 + rows, b.shape[0])
            for k, u in enumerate(stein_blocks(kernels, a[a0:a1], sa[a0:a1], b[c0:c1], sb[c0:c1])):
                out[k, c0:c1] += u.sum(0)
    return out
