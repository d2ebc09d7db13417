"""The registry of goodness-of-fit methods: a method added at run time is one function and one
line, and every reader of the registry sees it (gof_test, gof_tests, ``steinkit test``, the
contract tests, the Figure-5 reproduction); the default method is decided in one place; every
test-like result shares one base.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import steinkit as sk
import steinkit.gof.registry as registry
from steinkit.cli import main
from steinkit.gof import METHODS, GofMethod, TestOutcome, describe_methods, get_method, register, unregister
from steinkit.results import TestResult

from helpers import gen
from test_gof_contract import GofContract


def mean_score_test(x: torch.Tensor, s: torch.Tensor, *, ridge: float = 1e-9,
                    generator: torch.Generator | None = None) -> TestOutcome:
    """Hotelling's test of E s(x) = 0 (Stein's identity with a constant critic): under H0,
    T = n m̄ᵀ Σ̂⁻¹ m̄ of the scores s is chi-square with d degrees of freedom.

    Arguments:
        ridge: added to the diagonal of the scores' covariance.
    """
    if x.shape[0] < 2:
        raise ValueError(f"x must have at least 2 rows for the mean-score test, got n={x.shape[0]}")
    s64 = s.detach().double()
    n, d = s64.shape
    mean = s64.mean(0)
    cov = torch.cov(s64.T).reshape(d, d) + ridge * torch.eye(d, dtype=torch.float64)
    t = n * mean @ torch.linalg.solve(cov, mean)
    p = torch.special.gammaincc(torch.tensor(d / 2, dtype=torch.float64), t / 2)
    return TestOutcome(statistic=float(t), pvalue=float(p), details={"d": d})


TOY = GofMethod("toy", "Hotelling's test that the mean score is zero (a toy)", mean_score_test,
                statistic="n m'S^-1 m of the mean score m, chi-square(d) under H0; larger is evidence against H0")
MODEL = sk.models.Gaussian(torch.zeros(2), torch.eye(2))


@pytest.fixture
def toy():
    register(TOY)  # the one line
    try:
        yield TOY
    finally:
        unregister("toy")


class TestToyPassesTheContract(GofContract):
    """The shared contract of test_gof_contract.py, for a method registered at run time."""

    @pytest.fixture(scope="class")
    @classmethod
    def method(cls):
        register(TOY)
        try:
            yield "toy"
        finally:
            unregister("toy")


def _closed_form(x: torch.Tensor) -> float:
    s = -x.double()  # the model N(0, I)
    m = s.mean(0)
    return float(x.shape[0] * m @ torch.linalg.solve(torch.cov(s.T), m))


def test_a_registered_method_runs_through_gof_test_and_gof_tests(toy):
    assert "toy" in METHODS and METHODS[-1] == "toy" and "toy" in describe_methods()
    x = torch.randn(300, 2, generator=gen(0)) + 0.3
    res = sk.gof_test(MODEL, x, "toy")
    assert res.method == "toy" and res.statistic == pytest.approx(_closed_form(x), rel=1e-6)
    assert res.pvalue == pytest.approx(math.exp(-res.statistic / 2))  # chi-square(2) tail
    assert TOY.statistic in str(res)
    batch = sk.gof_tests([MODEL, MODEL], [x, x[:100]], method="toy", ridge=0.0)
    assert [r.statistic for r in batch] == pytest.approx([_closed_form(x), _closed_form(x[:100])], rel=1e-6)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['n_bootstrap'\] for method 'toy'; valid: \['ridge'\]"):
        sk.gof_test(MODEL, x, "toy", n_bootstrap=5)
    with pytest.raises(TypeError, match="protocol applies to method='lsd' only, not 'toy'"):
        sk.gof_test(MODEL, x, "toy", protocol="paper")


def test_an_unregistered_method_is_gone():
    assert "toy" not in METHODS
    with pytest.raises(ValueError, match=r"method must be one of \('lsd'.*got 'toy'"):
        sk.gof_test(MODEL, torch.randn(50, 2, generator=gen(1)), "toy")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "m.py").write_text("import torch, steinkit as sk\n"
                                   "model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200, 2)) + 0.2)
    return ["test", "--model", f"{tmp_path}/m.py:model", "--data", f"{tmp_path}/x.npy"]


def test_the_command_line_lists_and_runs_a_registered_method(toy, files, capsys):
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    helptext = capsys.readouterr().out
    assert "toy: Hotelling's test that the mean score is zero" in helptext and "options: ridge" in helptext
    assert main(files + ["--method", "toy", "--json", "--option", "ridge=0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "toy" and 0.0 <= out["pvalue"] <= 1.0 and out["details"] == {"d": 2}
    assert main(files + ["--method", "toy", "--max-seconds", "10"]) == 2
    assert "not to --method toy" in capsys.readouterr().err


def test_the_default_method_is_decided_in_one_place(toy, files, capsys, monkeypatch):
    x = torch.randn(200, 2, generator=gen(2))
    monkeypatch.setattr(registry, "DEFAULT_METHOD", "toy")
    assert sk.gof_test(MODEL, x).method == "toy" and sk.gof_tests([MODEL], [x])[0].method == "toy"
    assert main(files + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "toy"
    assert describe_methods().splitlines()[-2].startswith("toy*:")
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    assert "(default toy; listed below)" in " ".join(capsys.readouterr().out.split())


def test_the_default_method_today():
    assert registry.DEFAULT_METHOD == "witnesses" and get_method().name == "witnesses"
    res = sk.gof_test(MODEL, torch.randn(160, 2, generator=gen(3)) + 0.8, hidden=8, n_iters=30)
    assert res.method == "witnesses" and res.details["protocol"] == "witnesses" and res.reject


def test_the_reproduction_takes_a_registered_method(toy):
    from steinkit.experiments import rbm_power

    assert "toy" in rbm_power.reproduction_methods()
    tiny = rbm_power.QUICK.replace(dims=("4:2",), sigmas=(0.0,), reps=2, batch=2, n=60, burn_in=5,
                                 methods=("toy", "lksd"))
    configs = rbm_power.trial_configs(tiny)
    assert [c["method"] for c in configs] == ["toy", "lksd"] and configs[0]["options"] == {}
    tests = rbm_power.run_trial(configs[0])["tests"]
    assert len(tests) == 2 and all(0.0 <= t["pvalue"] <= 1.0 for t in tests)
    with pytest.raises(ValueError, match="methods must be one of"):
        rbm_power.QUICK.replace(methods=("t-test",))


def test_registration_is_checked():
    with pytest.raises(ValueError, match="already registered"):
        register(GofMethod("ksd", "another KSD", mean_score_test))
    for bad, error, match in [
        (dict(name="Two Words"), ValueError, "name must be"),
        (dict(description="two\nlines"), TypeError, "description must be one line"),
        (dict(description=""), ValueError, "description"),
        (dict(run=3), TypeError, "run must be callable"),
        (dict(options=dict), TypeError, "options must be a dataclass type"),
        (dict(batched=True), TypeError, "options must be given"),
    ]:
        with pytest.raises(error, match=match):
            GofMethod(**{"name": "x", "description": "d", "run": mean_score_test, **bad})
    with pytest.raises(TypeError, match="method must be a GofMethod"):
        register("toy")  # type: ignore[arg-type]


def test_options_are_the_test_functions_keywords_with_their_defaults_and_help():
    ksd = get_method("ksd").options()
    assert (ksd.n_bootstrap, ksd.bandwidth, ksd.max_seconds, ksd.max_memory_gb) == (1000, None, 600.0, "auto")
    assert get_method("ksdagg-inc").options().incomplete == 200 and get_method("ksdagg").options().incomplete is None
    for name in METHODS:  # every option of every built-in method has a help text
        assert all(get_method(name).option_help().values()), name
    lsd = get_method("lsd").option_names()
    assert {"protocol", "settings", "return_critic", "n_iters", "hidden"} <= set(lsd)
    with pytest.raises(ValueError, match="protocol must be one of"):
        get_method("lsd").options(protocol="cross")


def test_every_test_like_result_shares_one_base():
    x = torch.randn(200, 2, generator=gen(4))
    far = sk.models.Gaussian(torch.full((2,), 0.5), torch.eye(2))
    for res in (sk.gof_test(MODEL, x, "lksd"), sk.relative_test(MODEL, far, x)):
        assert isinstance(res, TestResult)
        statistic, pvalue = res
        assert (statistic, pvalue) == (res.statistic, res.pvalue) and res.reject == (pvalue < res.alpha)
        assert res.statistic_meaning in str(res) and "evidence" in res.statistic_meaning
        assert set(res.to_dict()) >= {"statistic", "pvalue", "reject", "alpha", "method"}
    agg = sk.gof_test(MODEL, x, "ksdagg", n_bootstrap=50, n_correction=50)
    assert "SMALLER is stronger evidence" in str(agg)  # a corrected minimum p-value: smaller is evidence
