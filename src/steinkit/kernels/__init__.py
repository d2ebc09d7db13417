"""Stein kernels as objects: every kernel test (``ksd``, ``lksd``, ``fssd``, ``ksdagg``,
``ksdagg-inc``, ``ksd-seq``) takes one as ``kernel=``.

* :class:`Gaussian` and :class:`IMQ`: radial kernels φ(‖x − y‖²_Γ / h²) with a bandwidth h
  (a number, ``"median"`` or a :class:`Bandwidths` collection) and an optional preconditioner Γ.
* :class:`Sum`: the sum of kernels (``k1 + k2``); its Stein kernel is the sum of theirs.
* :class:`SteinKernel`: the protocol a kernel of your own follows; a radial one subclasses
  :class:`Radial` and defines only its profile φ, φ', φ''. Registering it in :data:`KERNELS`
  (one line) lets the tests and the command line take it by name.
* :func:`autograd_stein_kernel`: the Stein kernel of any kernel by autograd, to check one.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) + 1.0
    >>> model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
    >>> sk.gof_test(model, x, method="ksd", kernel=sk.kernels.IMQ(beta=-0.3), seed=0).reject
    True
    >>> as_kernel("imq")
    IMQ(bandwidth='median', beta=-0.5, c=1.0)
"""

from __future__ import annotations

from typing import Any, Mapping

from ..validation import wrong_type
from .autograd import autograd_stein_kernel
from .bandwidths import Bandwidths, median_bandwidth
from .base import Radial
from .protocol import SteinKernel
from .gaussian import Gaussian
from .imq import IMQ
from .sum import Sum

__all__ = [
    "SteinKernel",
    "Radial",
    "Gaussian",
    "IMQ",
    "Sum",
    "Bandwidths",
    "KERNELS",
    "as_kernel",
    "median_bandwidth",
    "autograd_stein_kernel",
]

KERNELS: dict[str, type] = {
    "gaussian": Gaussian,
    "imq": IMQ,
}


def as_kernel(kernel: Any, name: str = "kernel", **defaults: Any) -> Any:
    """A Stein kernel from a kernel object, a name in :data:`KERNELS` or a mapping
    ``{"name": ..., **arguments}`` (what the command line's JSON gives).

    Arguments:
        kernel: the kernel or its description.
        name: the argument's name for error messages.
        **defaults: arguments for a kernel given by name that the description leaves out
            (e.g. a test's default ``bandwidth``).

    Example:
        >>> as_kernel({"name": "imq", "beta": -0.3, "bandwidth": 2.0})
        IMQ(bandwidth=2.0, beta=-0.3, c=1.0)
        >>> as_kernel("laplace")
        Traceback (most recent call last):
        ...
        ValueError: kernel must be one of ('gaussian', 'imq') or a Stein kernel object, got 'laplace'
    """
    if isinstance(kernel, SteinKernel) and not isinstance(kernel, (str, Mapping)):
        return kernel
    if isinstance(kernel, str):
        spec: dict[str, Any] = {"name": kernel}
    elif isinstance(kernel, Mapping):
        spec = dict(kernel)
    else:
        raise wrong_type(name, "a kernel name, a mapping with a 'name', or a Stein kernel object "
                               "(steinkit.kernels.SteinKernel)", kernel)
    kind = spec.pop("name", None)
    if kind not in KERNELS:
        shown = kernel if isinstance(kernel, str) else kind
        raise ValueError(f"{name} must be one of {tuple(KERNELS)} or a Stein kernel object, got {shown!r}")
    try:
        return KERNELS[kind](**{**defaults, **spec})
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
