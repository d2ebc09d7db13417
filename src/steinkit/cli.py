"""The ``steinkit`` command: demo, goodness-of-fit tests, discrepancy estimates, reproductions.

Example:
    steinkit demo
    steinkit test --model mymodel.py:model --data samples.npy --method lsd --json
    steinkit evaluate --model mymodel.py:model --data samples.npy
    steinkit compare --model a.py:model --model b.py:model --data samples.npy --witness where.png
    steinkit diagnose --target model.py:target --draws chains.npy --plot discrepancy.png
    steinkit reproduce gaussian-critic --out runs/fig3 --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from ._argtypes import typed
from .cli_diagnose import add_parser as add_diagnose_parser
from ._io import json_text, prepare_out
from ._optional import require_paper
from .user_inputs import UserInputError, load_object, load_samples, load_tensor
from .validation import positive_float, probability

__all__ = ["main", "load_object", "load_samples"]


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--option must look like name=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(parsed, list):
        parsed = tuple(parsed)
    return key.replace("-", "_"), parsed


def _cmd_test(args: argparse.Namespace) -> int:
    from .gof import gof_test, get_method

    options = dict(_parse_option(o) for o in args.option)
    method = get_method("lsd" if args.method is None and "protocol" in options else args.method)
    probability(args.alpha, "--alpha")
    for flag, key in (("--max-seconds", "max_seconds"), ("--max-memory-gb", "max_memory_gb")):
        value = getattr(args, key)
        if value is _UNSET:
            continue
        if key not in method.option_names():
            raise ValueError(f"{flag} applies to the tests that can be costly (--method {', '.join(_guarded(key))}), "
                             f"not to --method {method.name}")
        options[key] = value
    model = load_object(args.model)
    x = load_tensor(args.data)  # a float32 .npy stays memory-mapped
    long = True  # a method whose time is not predicted shows its progress bar, if it has one
    if method.name in ("lsd", "witnesses"):
        from .settings import LEARNED_TEST, TEST, field_names

        from .gof.lsd import DEFAULT_PROTOCOL

        protocol = options.get("protocol", DEFAULT_PROTOCOL) if method.name == "lsd" else "witnesses"
        defaults = TEST if protocol == "paper" else LEARNED_TEST
        trains = protocol != "features" and "trained" in options.get("members", ("trained",))
        long = trains and (  # the features protocol trains nothing, in seconds at n = 10^6
            _announce_fit_time("test", [model], x, defaults,
                               {k: v for k, v in options.items() if k in (*field_names(), "progress", "protocol",
                                                                          *_WITNESS_OPTIONS)},
                               args.seed, protocol))
    if "progress" in method.option_names():
        options.setdefault("progress", not args.json and long)
    result = gof_test(model, x, method=method.name, alpha=args.alpha, seed=args.seed, device=args.device, **options)
    if not args.json:
        print(result)
        return 0
    out = result.to_dict()
    if not args.verbose:
        out["details"] = {k: v for k, v in out["details"].items() if k not in _VERBOSE_DETAILS}
    print(json_text({**_inputs(args, x), **out}))
    return 0


def _guarded(key: str) -> list[str]:
    """The registered methods that take the option ``key`` (the cost limits)."""
    from .gof import registered

    return [name for name, m in registered().items() if key in m.option_names()]


_UNSET = object()


def _limit(*words: str) -> Any:
    """An argparse type: a positive number, or one of ``words`` ("none" is None)."""

    def convert(text: str) -> Any:
        if text.lower() in words:
            return None if text.lower() == "none" else text.lower()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a positive number or one of {', '.join(words)}, got {text!r}")
        return value

    return convert


_VERBOSE_DETAILS = ("bootstrap_statistics", "history", "statistics", "bandwidth_pvalues")


def _inputs(args: argparse.Namespace, x: Any) -> dict[str, Any]:
    return {"model": args.model, "data": args.data, "n": int(x.shape[0]), "d": int(x.shape[1]), "seed": args.seed}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import stein_discrepancy

    options = dict(_parse_option(o) for o in args.option)
    positive_float(args.lam, "--lam")
    model = load_object(args.model)
    x = load_tensor(args.data)  # a float32 .npy stays memory-mapped
    from .settings import ESTIMATE

    long = _announce_fit_time("estimate", [model], x, ESTIMATE.replace(lam=args.lam), options, args.seed)
    options.setdefault("progress", not args.json and long)
    est = stein_discrepancy(model, x, lam=args.lam, seed=args.seed, device=args.device, **options)
    if args.json:
        bounds = {"critic": est.scaled, "linear": est.linear, "coordinate": est.coordinate, "pooled": est.pooled,
                  "interaction": est.interaction}
        print(json_text({**_inputs(args, x), "method": "lsd", "value": est.value, "stderr": est.stderr,
                         "source": est.source, "overfit": est.overfit, "n_test": est.n_test, "lam": est.lam,
                         "best_iteration": est.best_iteration,
                         "bounds": {k: {"value": v[0], "stderr": v[1]} for k, v in bounds.items()}}))
    else:
        print(est)
    return 0


#: The witness-family test's options that change its time but are not critic settings.
_WITNESS_OPTIONS = ("members", "kernel", "kernel_basis", "kernel_points")

#: What a quicker critic fit uses (suggested when the settings are larger).
_QUICK = {"n_iters": 200, "hidden": 64}


def _announce_fit_time(what: str, models: Sequence[Any], x: Any, defaults: Any, options: dict[str, Any],
                       seed: int, protocol: str | None = None) -> bool:
    """Say on stderr, before the fit starts, about how long the LSD test (``what == "test"``, with
    ``protocol``; "witnesses": the witness-family test) or estimate (one critic per model, and per
    fold when cross-fitted) will take here (:mod:`steinkit.fit_time`) and which options shorten it.
    Returns whether it is long enough for a progress bar
    (:data:`~steinkit.fit_time.PROGRESS_SECONDS` or more)."""
    from .evaluate import CROSSFIT_MAX_N
    from .fit_time import PROGRESS_SECONDS, estimate_seconds, lsd_test_seconds, witness_test_seconds
    from .scores import as_score
    from .settings import auto_hidden, settings_from
    from .validation import as_data

    cfg = settings_from(None, defaults, {k: v for k, v in options.items()
                                         if k not in ("progress", "protocol", *_WITNESS_OPTIONS)})
    data = as_data(x, "x")
    problems = []
    for model in models:
        score = as_score(model)
        score.check_dim(data)
        problems.append((score, data, seed))

    def predict(settings: Any) -> float:
        if what == "test" and protocol == "witnesses":
            extra = {k: v for k, v in options.items() if k in _WITNESS_OPTIONS}
            return witness_test_seconds(problems, settings, **extra)
        if what == "test":
            return lsd_test_seconds(problems, settings, protocol or "combined")
        return estimate_seconds(problems, settings)

    hidden = cfg.hidden or auto_hidden(len(data), int(data.shape[1]))
    folds = cfg.folds if what != "test" and cfg.folds > 1 and len(data) <= CROSSFIT_MAX_N else 1
    count = len(models) * folds
    per = " and ".join(w for w, k in (("model", len(models)), ("fold", folds)) if k > 1)
    critics = f"{count} {cfg.n_layers}x{hidden} critics (one per {per})" if count > 1 else \
        f"a {cfg.n_layers}x{hidden} critic"
    steps = f"up to {cfg.n_iters}" if cfg.patience is not None else str(cfg.n_iters)
    seconds = predict(cfg)
    label = "witness-family test" if protocol == "witnesses" else f"LSD {what}"
    line = (f"steinkit: the {label} fits {critics} for {steps} steps: "
            f"about {_duration(seconds)} here (timed from a few steps)")
    quick = {k: v for k, v in _QUICK.items() if (hidden if k == "hidden" else getattr(cfg, k)) > v}
    if quick:
        flags = " ".join(f"--option {k}={v}" for k, v in quick.items())
        line += f"; {flags} shortens it to about {_duration(predict(cfg.replace(**quick)))}"
    print(line, file=sys.stderr, flush=True)
    return seconds >= PROGRESS_SECONDS


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _witness_kind(d: int) -> str:
    """What ``--witness`` draws for data of dimension d: the field ("field", d = 2) or images
    ("images", d a square >= 16); anything else is a user error, raised before any fitting."""
    if d == 2:
        return "field"
    if d >= 16 and math.isqrt(d) ** 2 == d:
        return "images"
    raise ValueError(f"--witness draws 2-D data (a critic field) or square images (d = 16, 25, ..., 784), "
                     f"not d = {d}: drop --witness")


def _cmd_compare(args: argparse.Namespace) -> int:
    from .evaluate import compare
    from .settings import ESTIMATE

    options = dict(_parse_option(o) for o in args.option)
    positive_float(args.lam, "--lam")
    if len(args.model) < 2 or len(set(args.model)) != len(args.model):
        raise ValueError(f"--model must name at least two different models, got {args.model}")
    models = {spec: load_object(spec) for spec in args.model}
    x = load_tensor(args.data)  # a float32 .npy stays memory-mapped
    kind = None if args.witness is None else _witness_kind(int(x.shape[1]))
    if args.witness is not None:
        prepare_out(Path(args.witness).parent, "--witness")
        require_paper("--witness")
    long = _announce_fit_time("comparison", list(models.values()), x, ESTIMATE.replace(lam=args.lam), options,
                              args.seed)
    options.setdefault("progress", not args.json and long)
    table = compare(models, x, lam=args.lam, seed=args.seed, device=args.device, pairwise=True,
                    return_critic=kind is not None, **options)
    if kind is not None:
        _draw_witness(table, x, kind, args)
    if not args.json:
        print(table)
        if args.witness is not None:
            print(f"witness picture in {args.witness}")
        return 0
    ranking = [{"name": r.name, "value": r.value, "stderr": r.stderr, "n_test": r.estimate.n_test,
                "best_iteration": r.estimate.best_iteration} for r in table]
    pairwise = [dataclasses.asdict(p) for p in table.pairwise]
    print(json_text({"models": args.model, "data": args.data, "n": int(x.shape[0]), "d": int(x.shape[1]),
                     "seed": args.seed, "method": table.method, "lam": args.lam, "ranking": ranking, "pairwise": pairwise,
                     "correction": table.correction, "witness": args.witness}))
    return 0


def _draw_witness(table: Any, x: Any, kind: str, args: argparse.Namespace) -> None:
    """Write the critics' picture: their fields over 2-D data, or for images the mean critic over
    the worst-fitted points of the comparison's test split."""
    import torch

    from .settings import ESTIMATE
    from .splits import split_data
    from .witness import witness
    from .witness_plots import plot_field, plot_images

    critics = {r.name: r.estimate.critic for r in table}
    if kind == "field":
        plot_field(critics, x, args.witness)
        return
    split = dict(_parse_option(o) for o in args.option).get("split", ESTIMATE.split)
    test = split_data(x, split, generator=torch.Generator().manual_seed(args.seed))[2]
    plot_images({name: witness(c, test) for name, c in critics.items()}, args.witness)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import FLAGS, check_demo, run_demo

    check_demo(n=args.n, n_iters=args.iters, seed=args.seed, names=FLAGS)  # before any sampling
    prepare_out(args.out, "--out")
    run_demo(args.out, n=args.n, n_iters=args.iters, seed=args.seed, device=args.device)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import get_reproduction
    from .experiments.settings import run_options_from_args, settings_from_args

    require_paper(f"steinkit reproduce {args.experiment}")  # before any trial runs
    reproduction = get_reproduction(args.experiment)
    settings = settings_from_args(args, reproduction.full, reproduction.quick)
    options = run_options_from_args(args)
    prepare_out(args.out, "--out")
    report = reproduction.run(settings, Path(args.out), options)
    print(f"{report['verdict']}\nresults in {args.out}")
    return 0


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="torch device to compute on, e.g. cuda or cuda:1 (default: cpu)")


def _test_epilog() -> dict[str, Any]:
    """The ``test`` command's list of methods, from the registry."""
    from .gof import describe_methods

    text = ("methods (* the default), each with its options (--option NAME=VALUE):\n"
            + describe_methods().replace("%", "%%"))
    return {"epilog": text, "formatter_class": argparse.RawDescriptionHelpFormatter}


def _add_test_arguments(p: argparse.ArgumentParser) -> None:
    """``steinkit test``'s own options; the methods and which take the cost limits come from the registry."""
    from .gof import METHODS, get_method

    costly = ", ".join(_guarded("max_seconds"))
    p.add_argument("--method", default=None, choices=METHODS, metavar="METHOD",
                   help=f"the test: {', '.join(METHODS)} (default {get_method().name}; listed below)")
    p.add_argument("--alpha", type=typed(float), default=0.05)
    p.add_argument("--max-seconds", type=_limit("none"), default=_UNSET, metavar="SECONDS|none",
                   help=f"{costly}: refuse when the predicted time is above this "
                        "(default 600; none: run whatever it costs)")
    p.add_argument("--max-memory-gb", type=_limit("none", "auto"), default=_UNSET, metavar="GB|auto|none",
                   help=f"{costly}: refuse when the predicted memory is above this "
                        "(default auto: half of the free memory; none: no limit)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``steinkit`` command."""
    from .experiments import EXPERIMENTS, get_reproduction
    from .experiments.settings import add_run_arguments, add_setting_arguments

    from . import __version__

    parser = argparse.ArgumentParser(
        prog="steinkit",
        description="Train, evaluate and test unnormalized density models with learned Stein discrepancies.",
    )
    parser.add_argument("--version", action="version", version=f"steinkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="rank perturbed RBMs by LSD on a built-in default problem")
    demo.add_argument("--out", default="steinkit-demo", help="output folder (default: steinkit-demo)")
    demo.add_argument("--n", type=typed(int), default=4000, help="samples from the RBM")
    demo.add_argument("--iters", type=typed(int), default=2000, help="most critic training steps (it stops earlier "
                      "when the held-out objective stops improving)")
    demo.add_argument("--seed", type=typed(int), default=0)
    _add_device(demo)
    demo.set_defaults(func=_cmd_demo)

    for name, helptext, func in [
        ("test", "goodness-of-fit test of a model against samples", _cmd_test),
        ("evaluate", "learned Stein discrepancy of a model on samples, with an error bar", _cmd_evaluate),
    ]:
        p = sub.add_parser(name, help=helptext, description=helptext, **(_test_epilog() if name == "test" else {}))
        p.add_argument("--model", required=True, help="path/to/file.py:name of a model object (or class)")
        p.add_argument("--data", required=True, help="samples (n, d) as .npy, .npz, .csv or .txt")
        p.add_argument("--seed", type=typed(int), default=0)
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.add_argument("--verbose", action="store_true", help="with --json: also bootstrap draws, critic histories and "
                       "per-bandwidth or per-critic statistics")
        p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                       help="extra option passed through (JSON values), e.g. --option n_iters=300")
        _add_device(p)
        if name == "test":
            _add_test_arguments(p)
        else:
            p.add_argument("--lam", type=typed(float), default=0.5)
        p.set_defaults(func=func)

    cmp = sub.add_parser("compare", help="rank models by LSD on the same samples, with pairwise p-values")
    cmp.add_argument("--model", required=True, action="append",
                     help="path/to/file.py:name of a model object (or class); give it once per model")
    cmp.add_argument("--data", required=True, help="samples (n, d) as .npy, .npz, .csv or .txt")
    cmp.add_argument("--seed", type=typed(int), default=0)
    cmp.add_argument("--lam", type=typed(float), default=0.5)
    cmp.add_argument("--json", action="store_true", help="print the ranking and the pairwise table as JSON")
    cmp.add_argument("--witness", default=None, metavar="OUT.png",
                     help="also draw the critics: their fields over 2-D data, or the mean critic over the worst-fitted "
                          "test points for square images")
    cmp.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help="extra option passed through (JSON values), e.g. --option n_iters=300")
    _add_device(cmp)
    cmp.set_defaults(func=_cmd_compare)

    add_diagnose_parser(sub)

    rep = sub.add_parser("reproduce", help="run one of the paper's experiments")
    rep_sub = rep.add_subparsers(dest="experiment", required=True)
    for exp_name in EXPERIMENTS:
        reproduction = get_reproduction(exp_name)
        p = rep_sub.add_parser(exp_name, help=reproduction.description, description=reproduction.description)
        p.add_argument("--out", required=True, help="output folder for results.json and figures")
        add_setting_arguments(p, reproduction.full, reproduction.quick)
        add_run_arguments(p)
        p.set_defaults(func=_cmd_reproduce)
    res = sub.add_parser("results", help="gather reproductions' reports into one markdown page")
    res.add_argument("runs", nargs="+", help="run folders written by steinkit reproduce")
    res.add_argument("--out", default="docs/results.md", help="the page to write (default docs/results.md)")
    res.set_defaults(func=_cmd_results)
    return parser


def _cmd_results(args: argparse.Namespace) -> int:
    from .experiments.report import build_results_page

    build_results_page([Path(r) for r in args.runs], Path(args.out))
    print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``steinkit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("steinkit: interrupted (finished trials and checkpoints are kept; rerun to resume)", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"steinkit: error: {_one_line(exc)}", file=sys.stderr)
        return 2


# A user's mistake (bad option, file, model or setting) or a numerical failure of their
# problem: one line, no traceback (``--debug`` shows it). Anything else is steinkit's bug.
_USER_ERRORS = (ValueError, TypeError, OSError, EOFError, ImportError, FloatingPointError, UserInputError)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or text}: {exc.filename}"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
