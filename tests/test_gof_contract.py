"""The contract every registered goodness-of-fit method passes (:mod:`steinkit.gof.registry`).

Each check runs once per method through the public front end ``sk.gof_test``: a valid
result on a small problem, an obvious misfit rejected, the same seed giving the same answer
whatever the global RNG did, a batch giving the lone answers, and bad input stopped early with
an error that names the argument. :class:`GofContract` holds the checks for the method its
``method`` fixture names; :class:`TestContract` runs them over every method registered when
the tests are collected, and a method registered later passes them by subclassing it
(test_registry.py does so with a toy method). Give a method cheap options in ``CHEAP`` if its
defaults are slow.

The LSD cases use a tiny critic and a few iterations (about a second in all); method-specific
checks (exact statistics, calibration, power) live in test_gof_api.py and test_kernel_gof.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re

import pytest
import torch

import steinkit as sk
from steinkit.gof import METHODS, get_method, registered

from helpers import gen

# Cheap settings per method; a method not listed runs with its defaults.
CHEAP: dict[str, dict] = {
    "lsd": dict(hidden=8, n_iters=20, val_every=10, lr=1e-2),
    "ksd": dict(n_bootstrap=200),
    "fssd": dict(opt_steps=5, n_simulate=200),
}
MODEL = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
N = 120


def _test(x, method: str, seed: int = 0, **kwargs) -> sk.GofResult:
    return sk.gof_test(MODEL, x, method=method, seed=seed, **{**CHEAP.get(method, {}), **kwargs})


def _assert_valid(res: sk.GofResult, method: str, alpha: float = 0.05) -> None:
    assert res.method == method
    assert isinstance(res.statistic, float) and math.isfinite(res.statistic)
    assert isinstance(res.pvalue, float) and 0.0 <= res.pvalue <= 1.0
    assert res.reject == (res.pvalue < alpha) and res.alpha == alpha
    assert res.seconds >= 0.0


@pytest.fixture(scope="module")
def null_x() -> torch.Tensor:
    return torch.randn(N, 2, generator=gen(0))


def _raises_naming(error, name: str, *must_contain: str, **call):
    """Call gof_test and check it raises ``error`` whose message names ``name`` (as a word)."""
    model = call.pop("model", MODEL)
    x = call.pop("x")
    with pytest.raises(error) as info:
        sk.gof_test(model, x, **call)
    msg = str(info.value)
    assert re.search(rf"\b{re.escape(name)}\b", msg), f"error does not name {name!r}: {msg}"
    for text in must_contain:
        assert text.lower() in msg.lower(), f"error does not say {text!r}: {msg}"


def _with_nan(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x[5, 1] = value
    return x


def test_methods_are_named():
    assert len(METHODS) == len(set(METHODS)) >= 4
    assert {"lsd", "ksd", "lksd", "fssd"} <= set(METHODS)
    for name, method in registered().items():
        assert method.name == name and method.description and "\n" not in method.description
        assert method.statistic and "evidence" in method.statistic  # says which way is evidence against H0


class GofContract:
    """The checks, for the registered method that the ``method`` fixture (class-scoped) names."""

    @pytest.fixture(scope="class")
    @classmethod
    def null_x(cls) -> torch.Tensor:
        return torch.randn(N, 2, generator=gen(0))

    @pytest.fixture(scope="class")
    @classmethod
    def first_result(cls, method, null_x) -> sk.GofResult:
        """One seed-0 run on the null data, shared by the checks that compare to it."""
        return _test(null_x, method, seed=0)

    # --- answers ----------------------------------------------------------------------------

    def test_valid_result_on_a_small_null_problem(self, method, first_result):
        res = first_result
        _assert_valid(res, method)
        assert method.upper() in str(res) and get_method(method).statistic in str(res)  # printable, says what t is
        json.dumps(res.to_dict(), default=str)  # storable
        with pytest.raises(dataclasses.FrozenInstanceError):
            res.pvalue = 0.5  # type: ignore[misc]
        statistic, pvalue = res
        assert (statistic, pvalue) == (res.statistic, res.pvalue)

    def test_obvious_misfit_is_rejected(self, method):
        x = torch.randn(N, 2, generator=gen(1)) + torch.tensor([2.0, 0.0])  # mean off by 2 sd
        res = _test(x, method, seed=0)
        _assert_valid(res, method)
        assert res.reject and res.pvalue < 0.01  # a bootstrap p-value is at least 1/(B + 1)

    def test_float64_and_array_data_are_accepted(self, method, null_x):
        for x in (null_x.double(), null_x.numpy()):
            _assert_valid(_test(x, method, seed=0), method)

    # --- seeds ------------------------------------------------------------------------------

    def test_same_seed_same_answer_whatever_the_global_rng(self, method, null_x, first_result):
        with torch.random.fork_rng():  # the answer depends on seed= alone, not on torch's global state
            torch.manual_seed(12345)
            torch.randn(7)
            again = _test(null_x.clone(), method, seed=0)
        first = first_result
        assert (again.statistic, again.pvalue, again.reject) == (first.statistic, first.pvalue, first.reject)

    def test_another_seed_gives_a_valid_answer(self, method, null_x):
        # A different seed may change the split, probes, bootstrap or locations, so the answer is
        # allowed to differ; it must still be a valid answer.
        _assert_valid(_test(null_x, method, seed=7), method)

    def test_batch_gives_the_lone_answers(self, method, null_x, first_result):
        other = torch.randn(N, 2, generator=gen(2)) + 0.3
        batch = sk.gof_tests([MODEL, MODEL], [null_x, other], method=method, seeds=[0, 3], **CHEAP.get(method, {}))
        lone = [first_result, _test(other, method, seed=3)]
        for b, a in zip(batch, lone):
            _assert_valid(b, method)
            # an LSD batch trains its critics as one ensemble: equal up to float32 round-off
            assert b.statistic == pytest.approx(a.statistic, rel=1e-4, abs=1e-5)
            assert b.pvalue == pytest.approx(a.pvalue, rel=1e-3, abs=1e-6)

    def test_a_generator_gives_the_seed(self, method, null_x):
        """generator= is accepted wherever seed= is: the same generator state gives the same answer."""
        one = _test(null_x, method, generator=torch.Generator().manual_seed(11))
        two = _test(null_x, method, generator=torch.Generator().manual_seed(11))
        assert (one.statistic, one.pvalue) == (two.statistic, two.pvalue)
        with pytest.raises(TypeError, match="generator"):
            _test(null_x, method, generator=11)

    # --- bad input --------------------------------------------------------------------------

    @pytest.mark.parametrize("case", ["nan", "inf", "one-dimensional", "wrong-dimension", "one-row"])
    def test_bad_data_is_named(self, method, case, null_x):
        x = {
            "nan": _with_nan(null_x, math.nan),
            "inf": _with_nan(null_x, math.inf),
            "one-dimensional": null_x[:, 0],
            "wrong-dimension": torch.randn(N, 3, generator=gen(3)),
            "one-row": null_x[:1],
        }[case]
        must = {"nan": ("nan",), "inf": ("inf",), "wrong-dimension": ("3", "2")}.get(case, ())
        _raises_naming(ValueError, "x", *must, x=x, method=method, **CHEAP.get(method, {}))

    @pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan])
    def test_alpha_outside_the_open_unit_interval(self, method, alpha, null_x):
        _raises_naming(ValueError, "alpha", x=null_x, method=method, alpha=alpha)

    def test_unknown_option(self, method, null_x):
        _raises_naming(TypeError, "not_an_option", "unknown", x=null_x, method=method, not_an_option=3)
        # an option of another method is unknown too, and the error lists this method's options
        mine = get_method(method).option_names()
        own = inspect.signature(sk.gof_test).parameters  # gof_test's keywords (protocol, ...) are not options
        other = next(o for m in ("lsd", "ksd") for o in get_method(m).option_names() if o not in mine and o not in own)
        _raises_naming(TypeError, other, "unknown", *mine, x=null_x, method=method, **{other: 3})

    @pytest.mark.parametrize("seed", [1.5, "0", True])
    def test_seed_that_is_not_an_int(self, method, seed, null_x):
        _raises_naming(TypeError, "seed", x=null_x, method=method, seed=seed)


class TestContract(GofContract):
    """Every method registered when the tests are collected."""

    @pytest.fixture(scope="class", params=list(METHODS))
    @classmethod
    def method(cls, request) -> str:
        return request.param


# --- the front end, whatever the method --------------------------------------------------------

@pytest.mark.parametrize("method", ["t-test", "KSD", ""])
def test_unknown_method(method, null_x):
    _raises_naming(ValueError, "method", *METHODS, x=null_x, method=method)


def test_model_that_is_not_a_model(null_x):
    _raises_naming(TypeError, "model", x=null_x, model=object(), method=METHODS[0])
