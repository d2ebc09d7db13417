"""Big data (issue 26): memory-mapped input, chunked pieces equal to the whole, the progress bar
only for long runs, and the time estimate's structure."""

import functools
import json
import math

import numpy as np
import pytest
import torch

import steinkit.fit_time as fit_time
import steinkit.last_layer as last_layer
import steinkit.prequential as prequential
from steinkit.cli import main
from steinkit.critics import MLPCritic
from steinkit.fit import chunked_terms
from steinkit.gof.lsd import lsd_tests
from steinkit.scores import as_score, score_rows
from steinkit.settings import ESTIMATE, LEARNED_TEST
from steinkit.stein import exact_trace
from steinkit.user_inputs import float32_tensor, load_samples, load_tensor

from helpers import gen

F64 = torch.float64

MODEL_FILE = """
import torch
import steinkit as sk

model = sk.models.Gaussian(torch.zeros(3), torch.eye(3))
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "mymodel.py").write_text(MODEL_FILE)
    x = np.random.default_rng(0).standard_normal((1200, 3))
    np.save(tmp_path / "x64.npy", x)
    np.save(tmp_path / "x32.npy", x.astype(np.float32))
    return tmp_path


# -- memory-mapped input ----------------------------------------------------------------------

def test_npy_data_are_memory_mapped_and_float32_files_are_used_in_place(files):
    raw = load_samples(f"{files}/x32.npy")
    assert isinstance(raw, np.memmap)
    x = float32_tensor(raw)
    assert x.dtype == torch.float32 and x.data_ptr() == raw.ctypes.data  # the mapped file, no copy
    x = load_tensor(f"{files}/x32.npy")
    x[0, 0] = 123.0  # copy-on-write: the file is untouched
    assert float(np.load(files / "x32.npy")[0, 0]) != 123.0


def test_other_dtypes_convert_chunk_by_chunk_to_the_same_values(files):
    raw = load_samples(f"{files}/x64.npy")
    assert isinstance(raw, np.memmap) and raw.dtype == np.float64
    chunked = float32_tensor(raw, rows=7)  # 172 chunks, each handing its mapped pages back
    assert torch.equal(chunked, torch.as_tensor(np.load(files / "x64.npy"), dtype=torch.float32))
    assert torch.equal(float32_tensor(np.arange(5, dtype=np.int64)[:, None], rows=2)[:, 0],
                       torch.arange(5.0))


@pytest.mark.parametrize("data", ["x32.npy", "x64.npy"])
def test_cli_tests_and_estimates_read_memory_mapped_files(files, capsys, data):
    argv = ["--model", f"{files}/mymodel.py:model", "--data", f"{files}/{data}", "--json"]
    assert main(["test", *argv, "--method", "lksd"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 1200 and out["d"] == 3 and 0 <= out["pvalue"] <= 1
    assert main(["evaluate", *argv, "--option", "n_iters=30", "--option", "hidden=8"]) == 0
    assert json.loads(capsys.readouterr().out)["n_test"] == 1200  # cross-fitted: every point tested


# -- chunked pieces equal the whole ------------------------------------------------------------

@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_exact_trace_of_a_standardised_ensemble_matches_autograd(n_layers):
    d = 5
    critic = MLPCritic(d, 7, n_layers, n_critics=2, seeds=[0, 1], dtype=F64, skip=True)
    with torch.no_grad():
        critic.skip.normal_(generator=gen(3))
    loc = torch.randn(2, 1, d, generator=gen(4), dtype=F64)
    critic.set_standardization(loc, 0.5 + torch.rand(2, 1, d, generator=gen(5), dtype=F64))
    x = torch.randn(6, d, generator=gen(1), dtype=F64)
    s = torch.randn(2, 6, d, generator=gen(2), dtype=F64)
    terms, _ = critic.eval().stein_terms(x, s, trace="exact")
    for k in range(2):
        tr, f = exact_trace(critic.member(k), x)
        torch.testing.assert_close(terms[k], (s[k] * f).sum(1) + tr, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_closed_form_witness_sums_match_autograd_and_add_up_over_chunks(n_layers, monkeypatch):
    d = 4
    critic = MLPCritic(d, 6, n_layers, n_critics=2, seeds=[0, 1], dtype=F64)
    critic.set_standardization(torch.zeros(2, 1, d, dtype=F64), 0.5 + torch.rand(2, 1, d, generator=gen(5), dtype=F64))
    x = torch.randn(2, 23, d, generator=gen(1), dtype=F64)
    s = torch.randn(2, 23, d, generator=gen(2), dtype=F64)
    phi, jac = last_layer._jacobian_sum_by_autograd(critic, x)
    reference = s.transpose(-1, -2) @ phi + jac
    monkeypatch.setattr(last_layer, "_SUM_ROWS", 5)
    weight, bias = last_layer.witness_sums(critic, x, s)
    torch.testing.assert_close(weight, reference, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(bias, s.sum(-2))


def test_chunked_terms_and_scores_equal_one_pass():
    critic = MLPCritic(3, 8, n_critics=2, seeds=[0, 1])
    x = torch.randn(2, 50, 3, generator=gen(0))
    terms, sq = chunked_terms(critic, x, -x, rows=7)
    whole, f = critic.stein_terms(x, -x, trace="exact")
    torch.testing.assert_close(terms, whole.detach())
    torch.testing.assert_close(sq, f.detach().pow(2).sum(-1))
    score = as_score(lambda z: -z * z.sum(-1, keepdim=True))
    assert torch.equal(score_rows(score, x[0], rows=7), score(x[0]))


def test_the_default_test_in_small_chunks_gives_the_same_statistic(monkeypatch):
    """The learned test's statistic does not depend on how its data are chunked (scores, fold
    terms, witness sums): the chunked run equals the one-pass run to float tolerance."""
    x = 1.3 * torch.randn(240, 3, generator=gen(0))
    problems = [(as_score(lambda z: -z), x, 0)]
    whole = lsd_tests(problems, n_iters=30, hidden=8)[0]
    monkeypatch.setattr(prequential, "chunked_terms", functools.partial(chunked_terms, rows=7))
    monkeypatch.setattr(prequential, "score_rows", functools.partial(score_rows, rows=11))
    monkeypatch.setattr(last_layer, "_SUM_ROWS", 9)
    chunked = lsd_tests(problems, n_iters=30, hidden=8)[0]
    assert chunked.statistic == pytest.approx(whole.statistic, rel=1e-5)
    assert chunked.details["statistics"] == pytest.approx(whole.details["statistics"], rel=1e-5)


def test_minibatches_above_the_batch_size_only():
    """Tests up to the batch size train full batch (their answers do not change); above it a step
    costs one batch whatever n."""
    x = 1.3 * torch.randn(400, 3, generator=gen(0))
    problems = [(as_score(lambda z: -z), x, 0)]
    full = lsd_tests(problems, protocol="sequential", n_iters=30, hidden=8)[0]
    same = lsd_tests(problems, protocol="sequential", n_iters=30, hidden=8, batch_size=300)[0]
    batched = lsd_tests(problems, protocol="sequential", n_iters=30, hidden=8, batch_size=64)[0]
    assert same.statistic == full.statistic and batched.statistic != full.statistic
    assert LEARNED_TEST.batch_size == 4096


# -- progress bar and time estimate ------------------------------------------------------------

@pytest.mark.parametrize("seconds, shown", [(1.0, False), (60.0, True)])
def test_progress_bar_only_for_long_runs(files, capsys, monkeypatch, seconds, shown):
    import steinkit.gof
    from steinkit.gof import gof_test

    calls = []
    monkeypatch.setattr(fit_time, "lsd_test_seconds", lambda *a, **k: seconds)
    monkeypatch.setattr(fit_time, "witness_test_seconds", lambda *a, **k: seconds)
    monkeypatch.setattr(fit_time, "estimate_seconds", lambda *a, **k: seconds)
    monkeypatch.setattr(steinkit.gof, "gof_test", lambda *a, **k: calls.append(k) or gof_test(*a, **k))
    argv = ["--model", f"{files}/mymodel.py:model", "--data", f"{files}/x32.npy", "--option", "n_iters=30",
            "--option", "hidden=8"]
    assert main(["test", *argv]) == 0
    err = capsys.readouterr().err
    assert calls[-1]["progress"] is shown
    assert ("fold 2 of 4" in err) is shown  # tqdm's bar on stderr, titled by stage
    import steinkit.evaluate

    estimates = []
    real = steinkit.evaluate.stein_discrepancy
    monkeypatch.setattr(steinkit.evaluate, "stein_discrepancy", lambda *a, **k: estimates.append(k) or real(*a, **k))
    assert main(["evaluate", *argv]) == 0
    assert estimates[-1]["progress"] is shown
    assert main(["test", *argv, "--json"]) == 0
    assert calls[-1]["progress"] is False  # --json: no bar


def test_the_time_estimate_counts_folds_models_and_early_stopping(monkeypatch):
    """With every timed piece but the step set to zero and a step costing one second per ensemble
    member, the prediction is (steps) x (critics): folds and models multiply it, early stopping
    cuts the steps to patience + BEST_RATE·√n_train/d validations, and above CROSSFIT_MAX_N one split
    replaces the folds."""
    monkeypatch.setattr(fit_time, "_seconds", lambda fn, repeats: 0.0)
    monkeypatch.setattr(fit_time._Timer, "step", lambda self, rows: float(self.members))
    x = torch.randn(500, 2, generator=gen(0))
    one = [(as_score(lambda z: -z), x, 0)]
    two = one + [(as_score(lambda z: -(z - 1)), x, 0)]
    cfg = ESTIMATE.replace(n_iters=100, hidden=8, patience=None)
    assert fit_time.estimate_seconds(one, cfg.replace(folds=1)) == 100
    assert fit_time.estimate_seconds(one, cfg) == 5 * 100
    assert fit_time.estimate_seconds(two, cfg) == 2 * 5 * 100
    stopping = cfg.replace(n_iters=1000, patience=10)  # expected to stop 10 validations after the best
    n_train = 500 - 100 - 44  # less a fold's test part and the validation share .1/.9 of the rest
    best = math.ceil(fit_time.BEST_RATE * n_train**0.5 / 2)
    assert fit_time.estimate_seconds(one, stopping) == 5 * 10 * (10 + best)
    import steinkit.evaluate

    monkeypatch.setattr(steinkit.evaluate, "CROSSFIT_MAX_N", 400)
    assert fit_time.estimate_seconds(one, cfg) == 100
    # the learned test: three prequential stages of n_iters // 3 steps, one critic per problem
    assert fit_time.lsd_test_seconds(one, LEARNED_TEST.replace(n_iters=90, hidden=8), "sequential") == 90
    assert fit_time.lsd_test_seconds(two, LEARNED_TEST.replace(n_iters=90, hidden=8)) == 2 * 90


def test_the_witness_test_time_counts_its_members(monkeypatch):
    """With every timed call costing one second, the prediction counts rows and pairs as the test
    does: the learned members as the LSD test's protocol, the scores at the shuffled points per
    row, the linear witness per row, and the kernel witness per (earlier point, tested point)
    pair of its seven scored eighths, each against at most kernel_basis earlier points."""
    monkeypatch.setattr(fit_time, "_seconds", lambda fn, repeats: 1.0)
    protocols = []
    monkeypatch.setattr(fit_time, "lsd_test_seconds", lambda p, s, protocol, **k: protocols.append(protocol) or 7.0)
    x = torch.randn(500, 2, generator=gen(0))
    one = [(as_score(lambda z: -z), x, 0)]
    score = 1.0  # one second for the 500 rows timed, 500 rows scored
    assert fit_time.witness_test_seconds(one, members=["linear"]) == pytest.approx(score + 1.0)
    m = 500 // 8  # the kernel member's eighths; one timed fold pair is 250 x 250
    pairs = sum(min(k * m, 1024) * m for k in range(1, 8))
    assert fit_time.witness_test_seconds(one, members=["kernel"]) == pytest.approx(score + pairs / 250**2)
    assert fit_time.witness_test_seconds(one, members=["kernel"], kernel_basis=100) == pytest.approx(
        score + sum(min(k * m, 100) * m for k in range(1, 8)) / (100 * 250))
    assert fit_time.witness_test_seconds(one, members=["trained", "features"]) == 7.0
    assert fit_time.witness_test_seconds(one, members=["trained"]) == 7.0
    assert protocols == ["combined", "sequential"]
