"""Neural critics f: R^d -> R^d for learned Stein discrepancies.

The default critic is an MLP with Swish units (2 hidden layers of 300 in the paper). Its Stein
terms are computed by forward-mode propagation of the probe through the network (the primal
rows and the tangent rows share every matrix product) with a hand-written backward pass, so a
critic training step needs no double backward. Several independent critics can be held in one
module (``n_critics=K``): their weights carry a leading ensemble axis and every product is a
batched matrix product, which trains K critics for about the price of one larger one.

Example:
    >>> import torch
    >>> critic = MLPCritic(dim=3, hidden=16, generator=torch.Generator().manual_seed(0))
    >>> critic(torch.randn(5, 3)).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from torch import Tensor, nn

from ._tangent import TangentMLP
from .coordinate_features import N_FEATURES, feature_pairs
from .validation import as_device, fraction, one_of, positive_int

__all__ = ["MLPCritic", "swish"]


def swish(h: Tensor) -> Tensor:
    """Swish (SiLU) nonlinearity ``h * sigmoid(h)``.

    Example:
        >>> float(swish(torch.tensor(0.0)))
        0.0
    """
    return h * torch.sigmoid(h)



Generators = Union[torch.Generator, Sequence[torch.Generator], None]


def _draw(draw, lead: torch.Size, shape: tuple[int, ...], generator: Generators) -> Tensor:
    """Draw a (*lead, *shape) tensor; with one generator per ensemble member, member k's slice
    is drawn from its own generator, exactly as a lone critic with that generator would."""
    if isinstance(generator, (list, tuple)):
        if len(lead) != 1 or lead[0] != len(generator):
            raise ValueError(f"need one generator per ensemble member ({lead}), got {len(generator)}")
        return torch.stack([draw(shape, g) for g in generator])
    return draw((*lead, *shape), generator)



class MLPCritic(nn.Module):
    """MLP critic R^d -> R^d with Swish units, optionally an ensemble of K independent critics.

    Arguments:
        dim: data dimension d (input and output width).
        hidden: units per hidden layer.
        n_layers: number of hidden layers.
        dropout: dropout probability on hidden units while training.
        n_critics: if given, hold K independent critics; inputs and outputs get a leading K axis.
        generator: random generator for the initialisation (PyTorch's ``nn.Linear`` scheme).
        seeds: for an ensemble, one seed per member; member k is then initialised exactly as
            ``MLPCritic(..., generator=torch.Generator().manual_seed(seeds[k]))``.
        dtype: the parameters' dtype.
        device: where the parameters live. They are drawn on the CPU (a CPU ``generator``) and
            then moved, so a seed gives the same critic on every device.
        skip: add a linear skip connection L z (L a (d, d) parameter, zero at first) to the output.
        loc, scale: standardise the input: the network g sees z = (x − loc)/scale and the critic is
            f(x) = g(z)/scale (a score has units of 1/x), so its Stein term at x is
            Σ_j (s_z,j g_j + ∂g_j/∂z_j)/scale_j² with s_z = scale ⊙ s(x), the score in z, and
            rescaling the data rescales every term alike (:meth:`set_standardization`; shapes
            (d,), or (K, 1, d) per ensemble member).

    Example:
        >>> ens = MLPCritic(dim=2, hidden=8, n_critics=3, seeds=[0, 1, 2])
        >>> ens(torch.randn(4, 2)).shape
        torch.Size([3, 4, 2])
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 300,
        n_layers: int = 2,
        dropout: float = 0.0,
        *,
        n_critics: int | None = None,
        generator: torch.Generator | None = None,
        seeds: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        skip: bool = False,
        loc: Tensor | None = None,
        scale: Tensor | None = None,
    ) -> None:
        super().__init__()
        dim, hidden = positive_int(dim, "dim"), positive_int(hidden, "hidden")
        n_layers = positive_int(n_layers, "n_layers")
        dropout = fraction(dropout, "dropout")
        device = as_device(device)
        if n_critics is not None:
            n_critics = positive_int(n_critics, "n_critics")
        if seeds is not None:
            if n_critics is None or len(seeds) != n_critics:
                raise ValueError("seeds must give one seed per critic (len(seeds) == n_critics)")
            if generator is not None:
                raise ValueError("give either generator or seeds, not both")
        self.dim, self.hidden, self.n_layers, self.dropout = dim, hidden, n_layers, dropout
        self.n_critics = n_critics
        widths = [dim] + [hidden] * n_layers + [dim]
        members = n_critics or 1
        gens = (
            [torch.Generator().manual_seed(int(s)) for s in seeds]
            if seeds is not None
            else [generator] * members
        )
        per_member = [_init_linear_stack(widths, gen, dtype) for gen in gens]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer in range(len(widths) - 1):
            ws = [member[layer][0] for member in per_member]
            bs = [member[layer][1] for member in per_member]
            w = torch.stack(ws) if n_critics else ws[0]
            b = torch.stack(bs) if n_critics else bs[0]
            self.weights.append(nn.Parameter(w.to(device)))
            self.biases.append(nn.Parameter(b.to(device)))
        lead = (n_critics,) if n_critics else ()
        self.skip = nn.Parameter(torch.zeros(*lead, dim, dim, dtype=dtype, device=device)) if skip else None
        self.coord: nn.Parameter | None
        self.register_parameter("coord", None)
        self.register_buffer("loc", None)
        self.register_buffer("scale", None)
        if (loc is None) != (scale is None):
            raise ValueError("give loc and scale together, or neither")
        if loc is not None:
            self.set_standardization(loc, scale)

    def set_standardization(self, loc: Tensor, scale: Tensor) -> MLPCritic:
        """Standardise inputs as (x − loc)/scale (see the class's ``loc``/``scale``); returns self.

        Example:
            >>> c = MLPCritic(2, hidden=4, generator=torch.Generator().manual_seed(0))
            >>> x = torch.randn(3, 2)
            >>> z = c(x)
            >>> torch.allclose(c.set_standardization(torch.zeros(2), 2 * torch.ones(2))(2 * x), z / 2)
            True
        """
        w = self.weights[0]
        loc = torch.as_tensor(loc, dtype=w.dtype, device=w.device)
        scale = torch.as_tensor(scale, dtype=w.dtype, device=w.device)
        if loc.shape[-1] != self.dim or scale.shape != loc.shape:
            raise ValueError(f"loc and scale must have one shape ending in d = {self.dim}, got {tuple(loc.shape)} "
                             f"and {tuple(scale.shape)}")
        if not bool((scale > 0).all()) or not bool(torch.isfinite(loc).all() & torch.isfinite(scale).all()):
            raise ValueError("scale must be finite and positive and loc finite")
        self.loc, self.scale = loc.clone(), scale.clone()
        return self

    def add_coordinate_features(self) -> MLPCritic:
        """Add the per-coordinate features of :mod:`steinkit.coordinate_features` to the output, with
        weights ``coord`` ((d, M), or (K, d, M)) zero at first; returns self.

        Example:
            >>> c = MLPCritic(2, hidden=4, generator=torch.Generator().manual_seed(0))
            >>> x = torch.randn(3, 2)
            >>> torch.equal(c.add_coordinate_features()(x), c(x)), tuple(c.coord.shape)
            (True, (2, 7))
        """
        if self.coord is None:
            w = self.weights[0]
            lead = (self.n_critics,) if self.n_critics else ()
            self.coord = nn.Parameter(torch.zeros(*lead, self.dim, N_FEATURES, dtype=w.dtype, device=w.device))
        return self

    def _coordinate_part(self, z: Tensor, s_w: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        """The coordinate features' output Σ_m α_jm u_m(z)_j and their Stein terms (exact trace)."""
        assert self.coord is not None
        coord = self.coord.unsqueeze(-3)
        g = diag = 0.0
        for m, (u, du) in enumerate(feature_pairs(z)):  # one feature at a time: memory as z's
            g, diag = g + u * coord[..., m], diag + du * coord[..., m]
        assert isinstance(g, Tensor) and isinstance(diag, Tensor)
        return g, (s_w * g).sum(-1) + (diag if w is None else diag * w).sum(-1)

    def _inputs(self, x: Tensor) -> Tensor:
        return x if self.loc is None else (x - self.loc) / self.scale

    def _outputs(self, g: Tensor) -> Tensor:
        return g if self.scale is None else g / self.scale

    def _weights(self) -> Tensor | None:
        """1/scale² per coordinate (the Stein term's weights in z), or None unstandardised."""
        return None if self.scale is None else self.scale.pow(-2)

    def member(self, k: int) -> MLPCritic:
        """A lone critic (no ensemble axis) holding a copy of ensemble member ``k``'s parameters,
        in eval mode; a lone critic gives a copy of itself.

        Example:
            >>> ens = MLPCritic(dim=2, hidden=8, n_critics=3, seeds=[0, 1, 2])
            >>> x = torch.randn(4, 2)
            >>> torch.allclose(ens.member(1)(x), ens(x)[1])
            True
        """
        members = self.n_critics or 1
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < members:
            raise ValueError(f"k must be an int in [0, {members}), got {k!r}")
        w = self.weights[0]
        lone = MLPCritic(self.dim, self.hidden, self.n_layers, self.dropout, generator=torch.Generator().manual_seed(0),
                         dtype=w.dtype, device=w.device, skip=self.skip is not None)  # overwritten below
        if self.coord is not None:
            lone.add_coordinate_features()
        with torch.no_grad():
            for mine, theirs in zip(lone.parameters(), self.parameters()):
                mine.copy_(theirs[k] if self.n_critics else theirs)
        if self.loc is not None:
            per_member = self.n_critics and self.loc.dim() == 3
            lone.set_standardization(self.loc[k, 0] if per_member else self.loc,
                                     self.scale[k, 0] if per_member else self.scale)
        return lone.eval()

    # -- plain evaluation -------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Critic values f(x): (n, d) -> (n, d), or (K, n, d) for an ensemble."""
        z = self._inputs(x)
        a = z
        for W, b in zip(list(self.weights)[:-1], list(self.biases)[:-1]):
            a = swish(a @ W.transpose(-1, -2) + b.unsqueeze(-2))
            if self.training and self.dropout > 0:
                a = nn.functional.dropout(a, self.dropout, training=True)
        g = a @ self.weights[-1].transpose(-1, -2) + self.biases[-1].unsqueeze(-2)
        if self.skip is not None:
            g = g + z @ self.skip.transpose(-1, -2)
        if self.coord is not None:
            g = g + self._coordinate_part(z, z, None)[0]
        return self._outputs(g)

    def _dropout_masks(self, lead: torch.Size, n: int, generator: Generators) -> list[Tensor]:
        if not (self.training and self.dropout > 0):
            return []
        keep = 1.0 - self.dropout
        w = self.weights[0]
        draw = lambda shape, g: torch.bernoulli(  # noqa: E731
            torch.full(shape, keep, dtype=w.dtype, device=w.device), generator=g
        ).div_(keep)
        return [_draw(draw, lead, (n, self.hidden), generator) for _ in range(self.n_layers)]

    def _lead(self, x: Tensor) -> torch.Size:
        return torch.broadcast_shapes(x.shape[:-2], self.weights[0].shape[:-2])

    # -- Stein terms ------------------------------------------------------------------------
    def jvp(
        self, x: Tensor, probes: Tensor, *, generator: Generators = None
    ) -> tuple[Tensor, Tensor]:
        """The network's values g(x) and Jacobian-vector products (∇g(x)) ε for each probe block
        (the MLP alone: no standardisation, no skip connection).

        ``probes`` holds P blocks of n rows stacked along the row axis ((P*n, d), or with the
        ensemble axis in front). Dropout (in training mode) uses one mask per example, shared
        by the primal row and its probes, drawn from ``generator``.
        """
        masks = self._dropout_masks(self._lead(x), x.shape[-2], generator)
        params: list[Tensor] = []
        for W, b in zip(self.weights, self.biases):
            params.extend([W, b])
        return TangentMLP.apply(x, probes, self.n_layers, *params, *masks)

    def stein_terms(
        self,
        x: Tensor,
        scores: Tensor,
        *,
        trace: str = "hutchinson",
        n_probes: int = 1,
        probes: Tensor | None = None,
        generator: Generators = None,
    ) -> tuple[Tensor, Tensor]:
        """Per-example Stein terms s(x)ᵀf(x) + tr ∇f(x) and the critic values f(x).

        Arguments:
            x: data, (n, d) (shared by every ensemble member) or (K, n, d).
            scores: model scores at x, same shape rules as x (per-member scores: (K, n, d)).
            trace: ``"hutchinson"`` (εᵀ∇f ε averaged over ``n_probes`` Gaussian probes) or
                ``"exact"``.
            probes: explicit probes (n_probes*n, d) instead of drawing them.
            generator: random generator for the probes and dropout masks; for an ensemble
                also a list with one generator per member.

        Returns:
            (terms, f) with terms (n,) or (K, n) and f (n, d) or (K, n, d).
        """
        z = self._inputs(x)
        w = self._weights()
        s_w = scores if self.scale is None else scores / self.scale  # = w ⊙ s_z
        if trace == "exact":
            terms, g = self._exact_terms(z, s_w, generator, w)
            if self.coord is not None:
                g_c, terms_c = self._coordinate_part(z, s_w, w)
                terms, g = terms + terms_c, g + g_c
            return terms, self._outputs(g)
        one_of(trace, "trace", ("hutchinson", "exact"))
        n = x.shape[-2]
        if probes is None:
            positive_int(n_probes, "n_probes")
            draw = lambda shape, g: torch.randn(  # noqa: E731
                shape, generator=g, dtype=x.dtype, device=x.device
            )
            probes = _draw(draw, self._lead(x), (n_probes * n, x.shape[-1]), generator)
        n_probes = probes.shape[-2] // n
        g, jv = self.jvp(z, probes, generator=generator)
        if self.skip is not None:
            g = g + z @ self.skip.transpose(-1, -2)
            jv = jv + probes @ self.skip.transpose(-1, -2)
        lead = jv.shape[:-2]
        left = probes.expand_as(jv) if w is None else probes.expand_as(jv) * w
        quad = (left * jv).sum(-1).reshape(*lead, n_probes, n).mean(-2)
        terms = (s_w * g).sum(-1) + quad
        if self.coord is not None:
            g_c, terms_c = self._coordinate_part(z, s_w, w)
            terms, g = terms + terms_c, g + g_c
        return terms, self._outputs(g)

    def _exact_terms(
        self, x: Tensor, scores: Tensor, generator: Generators, w: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Terms scoresᵀg + Σ_j w_j ∂g_j/∂x_j (w = 1 when None) and g at network inputs x."""
        masks = self._dropout_masks(self._lead(x), x.shape[-2], generator)
        a = x
        slopes: list[Tensor] = []
        for i, (W, b) in enumerate(zip(list(self.weights)[:-1], list(self.biases)[:-1])):
            h = a @ W.transpose(-1, -2) + b.unsqueeze(-2)
            s = torch.sigmoid(h)
            a = h * s
            g = s + a - a * s
            if masks:
                a = a * masks[i]
                g = g * masks[i]
            slopes.append(g)
        f = a @ self.weights[-1].transpose(-1, -2) + self.biases[-1].unsqueeze(-2)
        rows = None if w is None else w.transpose(-1, -2) if w.dim() == 3 else w.unsqueeze(-1)  # w as a column
        if self.n_layers == 2:
            # tr(diag(w) W3 D2 W2 D1 W1) = g2ᵀ (W2 ∘ (W1 diag(w) W3)ᵀ) g1 per example: one extra product.
            W1, W2, W3 = self.weights
            coupling = W2 * (W1 @ (W3 if rows is None else rows * W3)).transpose(-1, -2)
            trace = ((slopes[1] @ coupling) * slopes[0]).sum(-1)
        elif self.n_layers == 1:
            # tr(diag(w) W2 D1 W1) = g1ᵀ c per example, c_k = Σ_j w_j W2[j, k] W1[k, j]: O(width), whatever d.
            W1, W2 = self.weights
            paired = W2 * W1.transpose(-1, -2)
            coupling = (paired if rows is None else rows * paired).sum(-2)
            trace = (slopes[0] * coupling.unsqueeze(-2)).sum(-1)
        else:
            trace = self._exact_trace_by_basis(slopes, w)
        if self.skip is not None:
            f = f + x @ self.skip.transpose(-1, -2)
            diag = torch.diagonal(self.skip, dim1=-2, dim2=-1)
            trace = trace + (diag if w is None else diag * (w.squeeze(-2) if w.dim() == 3 else w)).sum(-1).unsqueeze(-1)
        return (scores * f).sum(-1) + trace, f

    def _exact_trace_by_basis(self, slopes: list[Tensor], w: Tensor | None = None) -> Tensor:
        """Σ_j w_j ∂f_j/∂x_j by pushing the d basis vectors through the linearised network (any depth;
        one and two hidden layers have closed forms in :meth:`_exact_terms`)."""
        W = list(self.weights)
        d = self.dim
        eye = torch.eye(d, dtype=W[0].dtype, device=W[0].device)
        # t: (..., n, d, width) tangents of every basis direction, one chunk of n at a time.
        traces = []
        n = slopes[0].shape[-2]
        chunk = max(1, int(2**24 // max(1, d * self.hidden)))
        for start in range(0, n, chunk):
            sl = [g[..., start : start + chunk, :] for g in slopes]
            t = (eye @ W[0].transpose(-1, -2)).unsqueeze(-3) * sl[0].unsqueeze(-2)
            for layer in range(1, self.n_layers):
                t = (t @ W[layer].transpose(-1, -2).unsqueeze(-3)) * sl[layer].unsqueeze(-2)
            out = (t * W[-1].unsqueeze(-3)).sum(-1)  # the diagonal of t W_lastᵀ, without the (d, d) product
            traces.append((out if w is None else out * w).sum(-1))
        return torch.cat(traces, dim=-1)


def _init_linear_stack(
    widths: Sequence[int], generator: torch.Generator | None, dtype: torch.dtype
) -> list[tuple[Tensor, Tensor]]:
    """Weights and biases drawn as ``nn.Linear`` does: U(-1/√fan_in, 1/√fan_in)."""
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        layers.append((w, b))
    return layers
