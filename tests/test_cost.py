"""Kernel tests that never die of memory: a test whose predicted time or memory is over its limit
refuses in one line before it allocates anything, names the cheaper methods and the override,
and the override runs it; the command line prints the same line."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import steinkit as sk
from steinkit.cli import main
from steinkit.gof import cost, fssd_test, ksd_test, ksdagg_test, sequential_witness_test

from helpers import gen

MODEL = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
MODEL_FILE = "import torch, steinkit as sk\nmodel = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n"
BIG = 10**6


@pytest.fixture(scope="module")
def big_x() -> torch.Tensor:
    return torch.randn(BIG, 2, generator=gen(0))


@pytest.mark.parametrize("method, what", [
    ("ksd", "is quadratic in n: n = 1000000"),
    ("ksdagg", "is quadratic in n: n = 1000000"),
    ("ksd-seq", "is quadratic in n: n = 1000000"),
    ("ksdagg-inc", "is linear in n but costs n·R·B per bandwidth: n = 1000000"),
])
def test_a_million_points_are_refused_in_one_line_before_any_work(method, what, big_x):
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        sk.gof_test(MODEL, big_x, method=method, seed=0)
    assert time.perf_counter() - start < 30  # the (n, n) work would take hours
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"method={method!r} {what}") and "would take about" in msg
    assert "method='lksd'" in msg and "method='lsd'" in msg
    assert "max_seconds=None" in msg and "run it anyway" in msg


def test_a_million_points_run_in_the_linear_test(big_x):
    res = sk.gof_test(MODEL, big_x[:200_000], method="lksd", seed=0)
    assert 0.0 <= res.pvalue <= 1.0


def test_the_limits_can_be_lowered_and_lifted():
    x = torch.randn(600, 2, generator=gen(1))
    with pytest.raises(ValueError, match=r"method='ksd' is quadratic in n: n = 600 would take about .*limit 1e-06 s\)"):
        ksd_test(x, -x, max_seconds=1e-6, generator=gen(0))
    ksd_test(x, -x, max_seconds=None, generator=gen(0))  # no limit: it runs
    with pytest.raises(ValueError, match=r"limit 1e-06 GB\); .*pass max_memory_gb=None \(--max-memory-gb none\)"):
        ksdagg_test(x, -x, max_memory_gb=1e-6, n_bootstrap=50, n_correction=50)
    with pytest.raises(ValueError, match="method='ksd-seq' is quadratic"):
        sequential_witness_test(x, -x, max_seconds=1e-6)
    with pytest.raises(ValueError, match="method='fssd' is linear in n but its optimisation costs"):
        fssd_test(x, -x, max_seconds=1e-6)
    with pytest.raises(ValueError, match="method='ksdagg-inc' .* lower incomplete, n_bootstrap or n_correction"):
        ksdagg_test(x, -x, incomplete=10, max_seconds=1e-6)
    # the limits travel through gof_test
    with pytest.raises(ValueError, match="method='ksd' is quadratic"):
        sk.gof_test(MODEL, x, method="ksd", max_seconds=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(max_seconds=0), ValueError, "max_seconds must be a finite number > 0"),
    (dict(max_seconds="1h"), TypeError, "max_seconds must be a real number"),
    (dict(max_memory_gb=-1.0), ValueError, "max_memory_gb must be a finite number > 0"),
    (dict(max_memory_gb="lots"), TypeError, "max_memory_gb must be a real number"),
])
def test_bad_limits_are_named(kwargs, error, match):
    x = torch.randn(50, 2, generator=gen(2))
    with pytest.raises(error, match=match):
        ksd_test(x, -x, **kwargs)


def test_small_tests_do_not_measure_anything(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("measured rates for a small test")

    monkeypatch.setattr(cost, "measure_rates", fail)
    x = torch.randn(300, 3, generator=gen(3))
    ksd_test(x, -x, generator=gen(0))
    ksdagg_test(x, -x, n_bootstrap=100, n_correction=100, generator=gen(0))
    sequential_witness_test(x, -x, generator=gen(0))


def test_measured_rates_predict_the_time_within_a_factor_of_a_few():
    x = torch.randn(3000, 10, generator=gen(4), dtype=torch.float64)
    predicted = []

    def record(method, what, *, seconds, rates, **kwargs):
        predicted.append(seconds(rates[1]()))

    original = cost.guard
    try:
        import steinkit.gof.ksd as ksd_module

        ksd_module.guard = record
        start = time.perf_counter()
        ksd_test(x, -x, generator=gen(0))
        took = time.perf_counter() - start
    finally:
        ksd_module.guard = original
    assert took / 5 < predicted[0] < took * 5


def test_duration_and_memory_read_well():
    assert cost.duration(45) == "45 s" and cost.duration(600) == "10 min" and cost.duration(4 * 3600) == "4.0 h"
    assert cost.symmetric_pairs(1000, 1000) == 1000 * 1000


@pytest.fixture
def files(tmp_path):
    (tmp_path / "m.py").write_text(MODEL_FILE)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((400, 2)).astype(np.float32))
    return tmp_path


def _test(files, *extra):
    return ["test", "--model", f"{files}/m.py:model", "--data", f"{files}/x.npy", *extra]


def test_the_command_line_prints_the_refusal_as_one_line(files, capsys):
    assert main(_test(files, "--method", "ksdagg", "--max-seconds", "1e-6")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("steinkit: error: method='ksdagg' is quadratic in n: n = 400")
    assert "--max-seconds none" in err
    assert main(_test(files, "--method", "ksd", "--max-seconds", "none", "--max-memory-gb", "auto")) == 0
    assert "KSD test" in capsys.readouterr().out
    assert main(_test(files, "--method", "ksd", "--max-memory-gb", "1e-9")) == 2
    assert "--max-memory-gb none" in capsys.readouterr().err


def test_the_command_lines_limit_flags_are_checked(files, capsys):
    for method in ("lsd", "lksd"):
        assert main(_test(files, "--method", method, "--max-seconds", "10")) == 2
        assert ("--max-seconds applies to the tests that can be costly (--method ksd, fssd, ksdagg, ksdagg-inc, "
                f"ksd-seq), not to --method {method}") in capsys.readouterr().err
    for flag, value, message in [("--max-seconds", "soon", "must be a positive number or one of none, got 'soon'"),
                                 ("--max-memory-gb", "-2", "must be a positive number or one of none, auto")]:
        with pytest.raises(SystemExit):
            main(_test(files, "--method", "ksd", flag, value))
        assert f"argument {flag}: {message}" in capsys.readouterr().err
