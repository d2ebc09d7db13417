"""``steinkit diagnose``: is a sampler's output distributed as the target? (:func:`steinkit.sample_quality`)

Example:
    steinkit diagnose --target model.py:target --draws chains.npy
    steinkit diagnose --target model.py:target --draws chains.npy --json --plot discrepancy.png

``--draws`` holds an array (chains, n, d), or (n, d) for one chain, as .npy or .npz (``file.npz:key``
picks an array), or one chain as .csv/.txt. The target is anything :func:`steinkit.as_score` takes,
a plain log-density function included.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ._argtypes import typed
from ._io import json_text, prepare_out, pyplot, save_figure
from .user_inputs import UserInputError, _file_and_key, _read_array, load_object, load_samples

__all__ = ["add_parser", "load_chains", "plot_history"]


def load_chains(path: str) -> np.ndarray:
    """Draws from a file: (chains, n, d) or (n, d) from .npy/.npz, (n, d) from .csv/.txt."""
    file, key = _file_and_key(path)
    if file.suffix not in (".npy", ".npz"):
        return load_samples(path)
    if not file.is_file():
        raise UserInputError(f"--draws file {file} does not exist")
    data = _read_array(file, key, "--draws")
    if data.ndim not in (2, 3) or not np.issubdtype(data.dtype, np.number):
        raise UserInputError(f"--draws file {file} must hold numbers of shape (chains, n, d) or (n, d), "
                             f"got {data.dtype} of shape {data.shape}")
    return data


def plot_history(result: Any, path: str) -> None:
    """Each chain's KSD² estimate (± 1 standard error) on its first n draws against n."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for c in result.chains:
        h = c.history
        lo = np.asarray(h["discrepancy"]) - np.asarray(h["stderr"])
        hi = np.asarray(h["discrepancy"]) + np.asarray(h["stderr"])
        line, = ax.plot(h["n"], h["discrepancy"], marker="o", ms=3,
                        label=f"chain {c.chain}" + (" (rejected)" if c.reject else ""))
        ax.fill_between(h["n"], lo, hi, color=line.get_color(), alpha=0.2)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("draws n (the first n of the chain)")
    ax.set_ylabel("KSD² estimate ± stderr")
    ax.set_title("Stein discrepancy as draws accumulate")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    import torch

    from .diagnostics import sample_quality
    from .validation import probability

    probability(args.alpha, "--alpha")
    if args.plot is not None:
        prepare_out(Path(args.plot).parent, "--plot")
    target = load_object(args.target)
    draws = torch.as_tensor(load_chains(args.draws))
    if not draws.is_floating_point():
        draws = draws.to(torch.float32)
    res = sample_quality(draws, target, alpha=args.alpha, method=args.method, history=args.plot is not None,
                         seed=args.seed, device=args.device)
    if args.plot is not None:
        plot_history(res, args.plot)
    if args.json:
        shape = tuple(draws.shape) if draws.dim() == 3 else (1, *draws.shape)
        print(json_text({"target": args.target, "draws": args.draws, "n_chains": shape[0], "n": shape[1], "d": shape[2],
                         "seed": args.seed, **res.to_dict(), "plot": args.plot}))
        return 0
    print(res)
    if args.plot is not None:
        print(f"discrepancy plot in {args.plot}")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``steinkit diagnose`` on the command's subparsers."""
    from .diagnostics import METHODS

    helptext = "is a sampler's output distributed as the target? per-chain Stein tests valid for MCMC draws"
    p = sub.add_parser("diagnose", help=helptext, description=helptext)
    p.add_argument("--target", required=True, help="path/to/file.py:name of the target: a model, a score function "
                   "or a log-density function x (n, d) -> (n,)")
    p.add_argument("--draws", required=True, help="draws (chains, n, d) or (n, d) as .npy or .npz[:key]; one chain "
                   "(n, d) as .csv or .txt")
    p.add_argument("--alpha", type=typed(float), default=0.05)
    p.add_argument("--method", default="batch-means", choices=METHODS)
    p.add_argument("--seed", type=typed(int), default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="draw each chain's discrepancy as draws accumulate")
    p.add_argument("--device", default=None, help="torch device to compute on, e.g. cuda (default: cpu)")
    p.set_defaults(func=_cmd_diagnose)
