"""A small Glow-like normalizing flow for grey images in logit space.

Architecture (Kingma & Dhariwal, 2018, as used in the paper's Section 7.3 / Appendix B.3):
additive couplings, ActNorm with data-dependent initialisation, reverse-shuffle channel
permutation and a multi-scale structure that factors half of the channels out to a standard
normal prior after every stage except the last.

The flow works on flat tensors ``x`` of shape ``(n, C*H*W)``, like the rest of steinkit. The
data pipeline is expected to dequantize and logit-transform the pixels; ``log_prob`` is the
normalized density *in that logit space*.

Squeeze rule. A stage starts with a 2x2 space-to-depth squeeze whenever both spatial sizes are
even, and runs without one otherwise. For 1x28x28 that gives

    stage 1: squeeze -> 4x14x14, K blocks, factor out 2 channels -> 2x14x14
    stage 2: squeeze -> 8x7x7,   K blocks, factor out 4 channels -> 4x7x7
    stage 3: (7 is odd, no squeeze) 4x7x7, K blocks

A block is ``ActNorm -> ReversePermute -> AdditiveCoupling``. Channel counts may be odd: the
coupling conditions on the first ``C // 2`` channels and shifts the other ``C - C // 2``; the
multi-scale split keeps ``C - C // 2`` channels and factors out ``C // 2``. A stage with a
single channel cannot couple, so such shapes are rejected at construction.

The latent ``z`` is flat: the channels factored out after stage 1 (flattened in (C, H, W)
order), then those after stage 2, ..., then the output of the last stage.
"""

from __future__ import annotations

import math
import torch
from torch import Tensor, nn

from ..validation import wrong_type

__all__ = [
    "Squeeze",
    "ActNorm",
    "ReversePermute",
    "AdditiveCoupling",
    "GlowFlow",
]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# Layers: each maps (n, C, H, W) -> (n, C', H', W') with forward(x) -> (y, log_det (n,)) and
# inverse(y) -> x.
# --------------------------------------------------------------------------------------------


class Squeeze(nn.Module):
    """2x2 space-to-depth: ``(n, C, H, W) -> (n, 4C, H/2, W/2)``; volume preserving.

    Example:
        >>> y, ld = Squeeze()(torch.zeros(2, 1, 4, 4))
        >>> tuple(y.shape), ld.tolist()
        ((2, 4, 2, 2), [0.0, 0.0])
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        y = y.reshape(n, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(n)

    def inverse(self, y: Tensor) -> Tensor:
        n, c4, h, w = y.shape
        c = c4 // 4
        x = y.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c, 2 * h, 2 * w)


class ActNorm(nn.Module):
    """Per-channel affine map ``y = (x + bias) * exp(log_scale)``.

    On the first forward call (while the ``initialized`` buffer is False) the parameters are
    set from that batch so that the output has zero mean and unit variance per channel. The
    flag is a buffer, so it travels with ``state_dict``. Before initialisation the layer is
    the identity (this is what ``inverse``/``sample`` use on an untouched flow).

    Arguments:
        channels: number of channels C.

    Example:
        >>> an = ActNorm(2)
        >>> y, ld = an(torch.randn(64, 2, 3, 3) * 5 + 1)
        >>> bool(an.initialized), abs(float(y.detach().mean())) < 1e-5
        (True, True)
    """

    initialized: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set bias and scale from the batch ``x`` (n, C, H, W) and mark as initialised."""
        x = x.detach()
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        ld = self.log_scale.sum() * (x.shape[2] * x.shape[3])
        return y, ld.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class ReversePermute(nn.Module):
    """Reverse the channel order ("reverse shuffle"); volume preserving.

    Example:
        >>> y, _ = ReversePermute()(torch.arange(3.0).reshape(1, 3, 1, 1))
        >>> y.flatten().tolist()
        [2.0, 1.0, 0.0]
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y.flip(1)


class AdditiveCoupling(nn.Module):
    """Additive coupling: ``y_a = x_a``, ``y_b = x_b + NN(x_a)``; volume preserving.

    ``x_a`` is the first ``C // 2`` channels, ``x_b`` the remaining ``C - C // 2``. ``NN`` is
    conv 3x3 -> ReLU -> conv 1x1 -> ReLU -> conv 3x3 with ``hidden`` channels; the last conv
    starts at zero so a fresh coupling is the identity.

    Arguments:
        channels: number of channels C (at least 2).
        hidden: hidden channels of the shift network.

    Example:
        >>> cp = AdditiveCoupling(3, hidden=8)
        >>> x = torch.randn(2, 3, 4, 4)
        >>> y, ld = cp(x)
        >>> bool(torch.equal(y, x)), ld.tolist()
        (True, [0.0, 0.0])
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"channels must be >= 2 for a coupling, got {channels}")
        self.n_cond = channels // 2
        n_out = channels - self.n_cond
        self.net = nn.Sequential(
            nn.Conv2d(self.n_cond, hidden, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, n_out, kernel_size=3, padding=1),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Conv2d)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = x[:, : self.n_cond], x[:, self.n_cond :]
        y = torch.cat([xa, xb + self.net(xa)], dim=1)
        return y, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        ya, yb = y[:, : self.n_cond], y[:, self.n_cond :]
        return torch.cat([ya, yb - self.net(ya)], dim=1)


# --------------------------------------------------------------------------------------------
# The multi-scale flow
# --------------------------------------------------------------------------------------------


class _Stage(nn.Module):
    """Optional squeeze followed by ``n_blocks`` x (ActNorm, ReversePermute, AdditiveCoupling)."""

    def __init__(self, channels: int, squeeze: bool, n_blocks: int, hidden: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Squeeze()] if squeeze else []
        c = 4 * channels if squeeze else channels
        for _ in range(n_blocks):
            layers += [ActNorm(c), ReversePermute(), AdditiveCoupling(c, hidden)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)  # type: ignore[operator]
        return y


class GlowFlow(nn.Module):
    """Glow-like multi-scale flow with additive couplings on flat ``(n, C*H*W)`` inputs.

    See the module docstring for the exact architecture and squeeze rule.

    Arguments:
        image_shape: ``(C, H, W)`` of one image.
        n_stages: number of multi-scale stages (half the channels are factored out after
            every stage but the last).
        n_blocks: blocks (ActNorm, ReversePermute, AdditiveCoupling) per stage.
        hidden_channels: hidden channels of every coupling's shift network.
        generator: if given, the conv weights are drawn from it (otherwise from the global
            RNG, as usual for ``nn.Module``); the last conv of each coupling starts at zero.

    ActNorm layers initialise themselves from the first batch passed to ``forward`` (or
    ``log_prob``/``score``), so make that first call on a representative batch of data
    (``steinkit.train.train(flow, x, method="ml", ...)`` does this with its first mini-batch).

    Example:
        >>> flow = GlowFlow((1, 8, 8), n_stages=2, n_blocks=1, hidden_channels=8)
        >>> x = torch.randn(16, 64)
        >>> z, log_det = flow(x)
        >>> tuple(z.shape), tuple(flow.log_prob(x).shape), tuple(flow.score(x).shape)
        ((16, 64), (16,), (16, 64))
        >>> bool(torch.allclose(flow.inverse(z), x, atol=1e-5))
        True
    """

    #: ``log_prob`` is the exact normalized density (so the flow trains with ``method="ml"``).
    normalized: bool = True

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        n_stages: int = 3,
        n_blocks: int = 4,
        hidden_channels: int = 128,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        shape = tuple(image_shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s >= 1 for s in shape):
            raise ValueError(
                f"image_shape must be three positive ints (C, H, W), got {image_shape!r}"
            )
        for name, val in (
            ("n_stages", n_stages),
            ("n_blocks", n_blocks),
            ("hidden_channels", hidden_channels),
        ):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        self.image_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.dim = shape[0] * shape[1] * shape[2]

        c, h, w = shape
        stages: list[_Stage] = []
        self._stage_in_shapes: list[tuple[int, int, int]] = []
        self._n_factored: list[int] = []  # channels factored out after each stage
        for i in range(n_stages):
            squeeze = h % 2 == 0 and w % 2 == 0
            self._stage_in_shapes.append((c, h, w))
            if squeeze:
                c, h, w = 4 * c, h // 2, w // 2
            if c < 2:
                raise ValueError(
                    f"image_shape {shape} with n_stages={n_stages}: stage {i + 1} would have a "
                    f"single channel at {h}x{w} (odd size, cannot squeeze), so no coupling is "
                    "possible; use fewer stages or an even image size"
                )
            stages.append(_Stage(self._stage_in_shapes[-1][0], squeeze, n_blocks, hidden_channels))
            if i < n_stages - 1:
                k = c // 2
                self._n_factored.append(k)
                c = c - k
        self._final_shape = (c, h, w)
        self.stages = nn.ModuleList(stages)
        if generator is not None:
            self._reset_convs(generator)

    @torch.no_grad()
    def _reset_convs(self, generator: torch.Generator) -> None:
        """Redraw the non-zero-initialised conv weights (PyTorch's default scheme) from
        ``generator`` so that construction is reproducible without the global seed."""
        for module in self.modules():
            if isinstance(module, AdditiveCoupling):
                for conv in list(module.net)[:-1]:
                    if isinstance(conv, nn.Conv2d):
                        nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=generator)
                        fan_in = conv.weight[0].numel()
                        bound = 1.0 / math.sqrt(fan_in)
                        assert conv.bias is not None
                        nn.init.uniform_(conv.bias, -bound, bound, generator=generator)

    # ---- input checks ------------------------------------------------------------------

    def _check(self, x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor):
            raise wrong_type(name, "a torch.Tensor", x)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{name} must be a 2-D tensor (n, {self.dim}) for image_shape "
                f"{self.image_shape}, got shape {tuple(x.shape)}"
            )
        p = next(self.parameters())
        if x.dtype != p.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the flow's parameters are {p.dtype}; "
                f"convert one of them (e.g. flow.to({x.dtype}))"
            )

    # ---- transforms --------------------------------------------------------------------

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map data ``x`` (n, D) to latents ``z`` (n, D); also return ``log|det dz/dx|`` (n,)."""
        self._check(x, "x")
        n = x.shape[0]
        h = x.reshape(n, *self.image_shape)
        log_det = x.new_zeros(n)
        zs: list[Tensor] = []
        for i, stage in enumerate(self.stages):
            h, ld = stage(h)
            log_det = log_det + ld
            if i < len(self.stages) - 1:
                keep = h.shape[1] - self._n_factored[i]
                zs.append(h[:, keep:].reshape(n, -1))
                h = h[:, :keep]
        zs.append(h.reshape(n, -1))
        return torch.cat(zs, dim=1), log_det

    def inverse(self, z: Tensor) -> Tensor:
        """Map latents ``z`` (n, D) back to data ``x`` (n, D)."""
        self._check(z, "z")
        n = z.shape[0]
        # sizes of the factored-out pieces, in order (a split keeps the spatial size, which is
        # the input size of the next stage)
        sizes = [
            k * h0 * w0 for k, (_, h0, w0) in zip(self._n_factored, self._stage_in_shapes[1:])
        ]
        pieces = list(torch.split(z, sizes + [self.dim - sum(sizes)], dim=1))
        c, h, w = self._final_shape
        y = pieces[-1].reshape(n, c, h, w)
        for i in range(len(self.stages) - 1, -1, -1):
            y = self.stages[i].inverse(y)  # type: ignore[operator]
            if i > 0:
                _, h0, w0 = self._stage_in_shapes[i]
                factored = pieces[i - 1].reshape(n, self._n_factored[i - 1], h0, w0)
                y = torch.cat([y, factored], dim=1)
        return y.reshape(n, self.dim)

    # ---- densities ---------------------------------------------------------------------

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalized log density of ``x`` (n, D) in the input (logit) space, shape (n,)."""
        z, log_det = self.forward(x)
        return -0.5 * (z * z).sum(dim=1) - 0.5 * self.dim * _LOG_2PI + log_det

    def score(self, x: Tensor, *, create_graph: bool | None = None) -> Tensor:
        """``grad_x log_prob(x)``, shape (n, D), by autograd.

        Works under ``torch.no_grad()`` (gradients are enabled internally). ``create_graph``
        defaults to ``torch.is_grad_enabled()`` at call time: under ``no_grad`` the result is
        detached (cheap, for evaluation); otherwise it carries a graph to the flow's
        parameters and, if ``x`` requires grad, to ``x`` (for training through the score).
        """
        self._check(x, "x")
        if create_graph is None:
            create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            lp = self.log_prob(xg)
            (g,) = torch.autograd.grad(lp.sum(), xg, create_graph=create_graph)
        return g if create_graph else g.detach()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw ``n`` samples (n, D): ``z ~ N(0, temperature^2 I)`` pushed through ``inverse``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or (
            temperature < 0
        ):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        p = next(self.parameters())
        # draw on the generator's device (a CPU generator also works for a GPU flow)
        gen_device = generator.device if generator is not None else p.device
        z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype, device=gen_device)
        z = z.to(p.device)
        return self.inverse(z * temperature)
