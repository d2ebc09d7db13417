"""A sweep over deliberately broken settings: huge learning rates, infinite or NaN λ, scores
that turn NaN only for some inputs or after some calls, zero-variance data, huge and tiny data,
degenerate bandwidths, through the API (every test method, estimates, comparisons, training)
and the command line.

Each case must end in one of two ways:

* a clear error: the expected exception type, with a message naming the argument or the cause
  (and, on the command line, one ``steinkit: error:`` line, no traceback, exit code 2), or
* an honest result: never a "do not reject" (or an estimate, or a finished training run) built
  on non-finite numbers, and never a NaN/Infinity token in any JSON or report written.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

import steinkit as sk
from helpers import gen
from steinkit._io import json_text
from steinkit.cli import main
from steinkit.critics import MLPCritic
from steinkit.evaluate import ComparisonRow, DiscrepancyEstimate
from steinkit.gof import GofResult
from steinkit.models import Gaussian, LinearICA
from steinkit.train import TrainingDiverged, TrainResult, train

X = torch.randn(200, 2, generator=gen(0)) + 0.5  # data shifted from the model N(0, I)
CONSTANT = torch.ones(200, 2)
LSD = dict(n_iters=20, hidden=8, val_every=10)  # tiny critics: the sweep stays fast
SEQ = dict(protocol="sequential", **LSD)  # a test that trains its critic (the default trains none)
AGG = dict(n_bootstrap=200, n_correction=200)


def _gauss() -> Gaussian:
    return Gaussian(torch.zeros(2), torch.eye(2))


def nan_for_some(x: torch.Tensor) -> torch.Tensor:
    """The score of N(0, I), NaN wherever x₁ > 1."""
    s = -x.clone()
    s[x[:, 0] > 1.0] = float("nan")
    return s


class NanLater:
    """The score of N(0, I) for the first ``calls`` calls, NaN after."""

    def __init__(self, calls: int = 1) -> None:
        self.left = calls

    def score(self, x: torch.Tensor) -> torch.Tensor:
        self.left -= 1
        return -x if self.left >= 0 else torch.full_like(x, float("nan"))


class NanLaterModule(nn.Module):
    """A trainable N(mu, I) whose score turns NaN from its ``bad_call``-th call on."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.dim, self.calls, self.bad_call = 2, 0, bad_call
        self.mu = nn.Parameter(torch.zeros(2))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s = -(x - self.mu)
        return s * float("nan") if self.calls >= self.bad_call else s


def _ica_data() -> torch.Tensor:
    return LinearICA.random(2, generator=gen(0)).sample(300, generator=gen(1))


def _train_lsd(**kw: Any) -> TrainResult:
    critic = MLPCritic(2, hidden=8, generator=gen(1))
    return train(kw.pop("model", LinearICA(torch.eye(2))), kw.pop("data", _ica_data()), critic=critic,
                 critic_steps=2, seed=0, progress=False, **{"steps": 30, **kw})


Outcome = tuple[type[BaseException], str] | None  # (error, regex its message must match), or None: a result

API: dict[str, tuple[Callable[[], Any], Outcome]] = {
    # huge learning rates
    "lsd test, lr 1e6": (lambda: sk.gof_test(_gauss(), X, "lsd", lr=1e6, **SEQ),
                         (FloatingPointError, "lower lr")),
    "lsd test, lr 1e30": (lambda: sk.gof_test(_gauss(), X, "lsd", lr=1e30, **SEQ),
                          (FloatingPointError, "lower lr")),
    "lsd test (features), lr given": (lambda: sk.gof_test(_gauss(), X, "lsd", protocol="features", lr=1e6),
                                                   (TypeError, "lr does not apply to protocol='features'")),
    "estimate, lr 1e6": (lambda: sk.stein_discrepancy(_gauss(), X, lr=1e6, **LSD), (FloatingPointError, "lower lr")),
    "comparison, lr 1e6": (lambda: sk.compare({"a": _gauss(), "b": lambda z: 1 - z}, X, lr=1e6, **LSD),
                           (FloatingPointError, "lower lr")),
    "training, lr 1e4": (lambda: _train_lsd(lr=1e4), (TrainingDiverged, r"max_loss_ratio.*lr \(now 10000\)")),
    "training, lr inf": (lambda: _train_lsd(lr=float("inf")), (ValueError, "lr must be a finite number")),
    # infinite, NaN and extreme λ
    "lsd test, lam inf": (lambda: sk.gof_test(_gauss(), X, "lsd", lam=float("inf"), **SEQ), (ValueError, "lam")),
    "lsd test, lam nan": (lambda: sk.gof_test(_gauss(), X, "lsd", lam=float("nan"), **SEQ), (ValueError, "lam")),
    "lsd test, lam 1e-30": (lambda: sk.gof_test(_gauss(), X, "lsd", lam=1e-30, **SEQ), None),
    "lsd test, lam 1e30": (lambda: sk.gof_test(_gauss(), X, "lsd", lam=1e30, **SEQ), None),
    "estimate, lam inf": (lambda: sk.stein_discrepancy(_gauss(), X, lam=float("inf"), **LSD), (ValueError, "lam")),
    "comparison, lam nan": (lambda: sk.compare({"a": _gauss()}, X, lam=float("nan"), **LSD), (ValueError, "lam")),
    "training, lam inf": (lambda: _train_lsd(lam=float("inf")), (ValueError, "lam must be a finite number")),
    # scores that turn NaN for some inputs, or after some calls (mid-way)
    **{f"{m} test, NaN score for some inputs": (
        lambda m=m: sk.gof_test(nan_for_some, X, m, **(AGG if m == "ksdagg" else {})),
        (ValueError, r"score of model .*nan_for_some.* NaN")) for m in ("lsd", "ksd", "lksd", "fssd", "ksdagg")},
    "lsd test, score NaN after its first call": (lambda: sk.gof_test(NanLater(1), X, "lsd", protocol="aggregated",
                                                                     **LSD),
                                                 (ValueError, r"NanLater.score\) returned NaN")),
    "estimate, score NaN after its first call": (lambda: sk.stein_discrepancy(NanLater(1), X, **LSD),
                                                 (ValueError, "returned NaN")),
    "comparison, one model NaN for some inputs": (lambda: sk.compare({"a": _gauss(), "b": nan_for_some}, X, **LSD),
                                                  (ValueError, "nan_for_some")),
    "training, score NaN mid-way": (lambda: _train_lsd(model=NanLaterModule(bad_call=20), data=X),
                                    (TrainingDiverged, r"NaN/inf at step \d+ .*smaller lr")),
    # zero-variance data
    "lsd test, constant data": (lambda: sk.gof_test(_gauss(), CONSTANT, "lsd", hidden=8), None),  # rejects: t = +inf
    "lsd sequential test, constant data": (lambda: sk.gof_test(_gauss(), CONSTANT, "lsd", **SEQ),
                                           (FloatingPointError, "no spread .*check x")),
    "lsd aggregated test, constant data": (lambda: sk.gof_test(_gauss(), CONSTANT, "lsd", protocol="aggregated", **LSD),
                                           None),
    "ksd test, constant data": (lambda: sk.gof_test(_gauss(), CONSTANT, "ksd"), None),
    "fssd test, constant data and a zero score": (lambda: sk.gof_test(torch.zeros_like, CONSTANT, "fssd"),
                                                  (FloatingPointError, "zero variance")),
    "estimate, constant data": (lambda: sk.stein_discrepancy(_gauss(), CONSTANT, **LSD), None),
    "training, constant data": (lambda: _train_lsd(model=_gauss(), data=CONSTANT),
                                (ValueError, "data has zero variance")),
    # huge and tiny data values, degenerate bandwidths
    "lsd test, data 1e20": (lambda: sk.gof_test(lambda z: -z, X * 1e20, "lsd", hidden=8),
                            (FloatingPointError, r"largest \|x\| is .*e\+20.*rescale")),
    "estimate, data 1e20": (lambda: sk.stein_discrepancy(lambda z: -z, X * 1e20, **LSD),
                            (FloatingPointError, "rescale")),
    "ksd test, data 1e20": (lambda: sk.gof_test(lambda z: -z, X * 1e20, "ksd"), None),
    "lksd test, data 1e-30": (lambda: sk.gof_test(lambda z: -z, X * 1e-30, "lksd"), None),
    "ksdagg test, data 1e20": (lambda: sk.gof_test(lambda z: -z, X * 1e20, "ksdagg", **AGG), None),
    "training, data 1e20": (lambda: train(_gauss(), X * 1e20, method="ml", steps=5, seed=0, progress=False),
                            (TrainingDiverged, r"before any update.*largest \|data\| is .*e\+20")),
    "nce training, data 1e20": (lambda: train(_gauss(), X * 1e20, method="nce", steps=5, seed=0, progress=False),
                                (ValueError, "rescale")),
    "lksd test, bandwidth 1e-30": (lambda: sk.gof_test(_gauss(), X, "lksd", bandwidth=1e-30),
                                   (FloatingPointError, r"bandwidth \(1e-30\)")),
    "fssd test, bandwidth 1e-30": (lambda: sk.gof_test(_gauss(), X, "fssd", bandwidth=1e-30),
                                   (FloatingPointError, r"bandwidth \(1e-30\)")),
    "ksd test, bandwidth 1e30": (lambda: sk.gof_test(_gauss(), X, "ksd", bandwidth=1e30), None),
    "ksd test, no bootstrap draws": (lambda: sk.gof_test(_gauss(), X, "ksd", n_bootstrap=0),
                                     (ValueError, "n_bootstrap")),
    "any test, alpha nan": (lambda: sk.gof_test(_gauss(), X, "ksd", alpha=float("nan")), (ValueError, "alpha")),
}


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _strict_json(text: str) -> Any:
    """Parse ``text``, failing on NaN/Infinity tokens."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))


def _assert_honest(result: Any) -> None:
    if isinstance(result, GofResult):
        assert result.reject or _finite(result.statistic, result.pvalue), result
        _strict_json(json_text(result.to_dict()))
    elif isinstance(result, DiscrepancyEstimate):
        assert _finite(result.value, result.stderr), result
    elif isinstance(result, list) and all(isinstance(r, ComparisonRow) for r in result):
        assert all(_finite(r.value, r.stderr) for r in result), result
    elif isinstance(result, TrainResult):
        assert result.diverged_at is None and all(_finite(h["loss"]) for h in result.history)
    else:
        pytest.fail(f"unexpected result {result!r}")


@pytest.mark.parametrize("case", sorted(API))
def test_api_gives_a_clear_error_or_an_honest_result(case):
    call, outcome = API[case]
    if outcome is None:
        _assert_honest(call())
        return
    error, pattern = outcome
    with pytest.raises(error, match=pattern):
        call()


def test_the_sweep_is_large_enough():
    assert len(API) + len(CLI) >= 20


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "m.py").write_text("import torch, steinkit as sk\nmodel = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    (tmp_path / "nan_some.py").write_text(
        "def model(x):\n    s = -x.clone()\n    s[x[:, 0] > 1.0] = float('nan')\n    return s\n")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((200, 2)) + 0.5)
    np.save(tmp_path / "huge.npy", rng.standard_normal((200, 2)) * 1e20)
    np.save(tmp_path / "constant.npy", np.ones((200, 2)))
    return tmp_path


def _cmd(command: str, d: Path, data: str = "x.npy", model: str = "m.py:model", *extra: str) -> list[str]:
    return [command, "--model", f"{d}/{model}", "--data", f"{d}/{data}", "--json", *extra]


_SEQ = ("--option", "protocol=sequential")


def _lsd(*extra: str) -> tuple[str, ...]:
    return ("--option", "n_iters=20", "--option", "hidden=8", "--option", "val_every=10", *extra)


CLI: dict[str, tuple[Callable[[Path], list[str]], str | None]] = {
    # argv, and the words the one error line must hold (None: a result, exit code 0)
    "test lsd, lr 1e6": (lambda d: _cmd("test", d, "x.npy", "m.py:model", *_lsd("--option", "lr=1e6", *_SEQ)),
                         "lower lr"),
    "test lsd, lam Infinity": (lambda d: _cmd("test", d, "x.npy", "m.py:model",
                                              *_lsd("--option", "lam=Infinity", *_SEQ)),
                               "lam must be a finite number"),
    "test lsd, NaN score for some inputs": (lambda d: _cmd("test", d, "x.npy", "nan_some.py:model",
                                                           "--option", "hidden=8"),
                                            "returned NaN"),
    "test lsd, data 1e20": (lambda d: _cmd("test", d, "huge.npy", "m.py:model", "--option", "hidden=8"), "rescale"),
    "test lksd, bandwidth 1e-30": (lambda d: _cmd("test", d, "x.npy", "m.py:model", "--method", "lksd",
                                                  "--option", "bandwidth=1e-30"), "bandwidth"),
    "test ksd, data 1e20": (lambda d: _cmd("test", d, "huge.npy", "m.py:model", "--method", "ksd"), None),
    "test lksd, constant data": (lambda d: _cmd("test", d, "constant.npy", "m.py:model", "--method", "lksd"), None),
    "test fssd, NaN score for some inputs": (lambda d: _cmd("test", d, "x.npy", "nan_some.py:model", "--method",
                                                            "fssd"), "returned NaN"),
    "evaluate, lr 1e6": (lambda d: _cmd("evaluate", d, "x.npy", "m.py:model", *_lsd("--option", "lr=1e6")),
                         "lower lr"),
    "evaluate, lam nan": (lambda d: _cmd("evaluate", d, "x.npy", "m.py:model", "--lam", "nan"), "--lam must be"),
    "evaluate, constant data": (lambda d: _cmd("evaluate", d, "constant.npy", "m.py:model", *_lsd()), None),
    "reproduce, a mean shift of 1e30 and tiny scale": (
        lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/out", "--dim", "2", "--iters", "5", "--batch-size",
                   "8", "--n-eval", "8", "--mean-shift", "1e30", "--scale", "1e-12", "--lam", "1e-12", "--no-progress"],
        None),
}

_NON_FINITE_WORD = re.compile(r"\b(nan|-?inf(inity)?)\b", re.IGNORECASE)


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_gives_one_error_line_or_strict_output(files, capsys, case):
    argv, needle = CLI[case]
    code = main(argv(files))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if needle is not None:
        last = err.strip().splitlines()[-1]
        assert code == 2 and out == "" and last.startswith("steinkit: error:") and needle in last, err
        return
    assert code == 0, err
    if "--json" in argv(files):
        result = _strict_json(out)
        if result.get("method") and "reject" in result:
            assert result["reject"] or (result["statistic"] is not None and result["pvalue"] is not None)
        else:
            assert result["value"] is not None and result["stderr"] is not None
    for path in (files / "out").rglob("*") if (files / "out").exists() else ():
        if path.suffix == ".json":
            _strict_json(path.read_text())
        elif path.suffix == ".md":
            assert not _NON_FINITE_WORD.search(path.read_text()), path
