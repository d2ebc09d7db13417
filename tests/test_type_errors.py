"""Type errors say "type": an argument of the wrong type raises ``TypeError`` whose message has
the word "type" and the argument's name, in the API and on the command line (there with the
flag's or option's name, one line, no traceback)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import steinkit as sk
from helpers import gen
from steinkit.cli import main
from steinkit.samplers import sgld
from steinkit.settings import CriticSettings
from steinkit.train import TrainSettings, train

X = torch.randn(60, 2, generator=gen(0))
GAUSS = sk.models.Gaussian(torch.zeros(2), torch.eye(2))


def _q() -> sk.models.Gaussian:
    return sk.models.Gaussian(torch.zeros(2), torch.eye(2))


API = {
    "gof_test lam": (lambda: sk.gof_test(GAUSS, X, "lsd", lam="0.5"), "lam"),
    "gof_test n_iters": (lambda: sk.gof_test(GAUSS, X, "lsd", n_iters=2.5), "n_iters"),
    "gof_test seed": (lambda: sk.gof_test(GAUSS, X, "ksd", seed="a"), "seed"),
    "gof_test alpha": (lambda: sk.gof_test(GAUSS, X, "ksd", alpha="0.05"), "alpha"),
    "gof_test generator": (lambda: sk.gof_test(GAUSS, X, "ksd", generator=0), "generator"),
    "gof_test x": (lambda: sk.gof_test(GAUSS, "abc", "ksd"), "x"),
    "gof_test model": (lambda: sk.gof_test(3, X, "ksd"), "model"),
    "gof_test settings": (lambda: sk.gof_test(GAUSS, X, "lsd", settings={"n_iters": 5}), "settings"),
    "ksd n_bootstrap": (lambda: sk.gof_test(GAUSS, X, "ksd", n_bootstrap=10.0), "n_bootstrap"),
    "fssd n_locations": (lambda: sk.gof_test(GAUSS, X, "fssd", n_locations="5"), "n_locations"),
    "lksd bandwidth": (lambda: sk.gof_test(GAUSS, X, "lksd", bandwidth=[1.0]), "bandwidth"),
    "stein_discrepancy lam": (lambda: sk.stein_discrepancy(GAUSS, X, lam="0.5"), "lam"),
    "stein_discrepancy hidden": (lambda: sk.stein_discrepancy(GAUSS, X, hidden=3.0), "hidden"),
    "stein_discrepancy seed": (lambda: sk.stein_discrepancy(GAUSS, X, seed=1.5), "seed"),
    "relative_test lam": (lambda: sk.relative_test(GAUSS, GAUSS, X, lam="0.5"), "lam"),
    "relative_test seed": (lambda: sk.relative_test(GAUSS, GAUSS, X, seed=1.5), "seed"),
    "relative_test return_critic": (lambda: sk.relative_test(GAUSS, GAUSS, X, return_critic=1), "return_critic"),
    "compare pairwise": (lambda: sk.compare({"a": GAUSS}, X, pairwise="yes"), "pairwise"),
    "witness result": (lambda: sk.witness(3, X), "result"),
    "compare models": (lambda: sk.compare([GAUSS], X), "models"),
    "CriticSettings dropout": (lambda: CriticSettings(dropout="0.1"), "dropout"),
    "train steps": (lambda: train(_q(), X, method="ml", steps="10", progress=False), "steps"),
    "train lr": (lambda: train(_q(), X, method="ml", steps=1, lr="1e-3", progress=False), "lr"),
    "train lam": (lambda: train(_q(), X, method="lsd", steps=1, lam="0.5", progress=False), "lam"),
    "train seed": (lambda: train(_q(), X, method="ml", steps=1, seed="a", progress=False), "seed"),
    "train resume": (lambda: train(_q(), X, method="ml", steps=1, resume="yes", progress=False), "resume"),
    "train checkpoint": (lambda: train(_q(), X, method="ml", steps=1, checkpoint=3, progress=False), "checkpoint"),
    "train eval_fn": (lambda: train(_q(), X, method="ml", steps=1, eval_fn=3, progress=False), "eval_fn"),
    "train max_loss_ratio": (lambda: TrainSettings(steps=1, max_loss_ratio="big"), "max_loss_ratio"),
    "train model": (lambda: train(lambda z: -z, X, method="lsd", steps=1, progress=False), "model"),
    "model parameter": (lambda: sk.models.Gaussian("a", torch.eye(2)), "mean"),
    "sample n": (lambda: GAUSS.sample(2.5), "n"),
    "sgld step_size": (lambda: sgld(lambda z: -z, torch.zeros(3, 2), step_size="0.1", n_steps=1), "step_size"),
}


def _says_type(message: str, name: str) -> bool:
    return re.search(r"\btype\b", message) is not None and name in message


@pytest.mark.parametrize("case", sorted(API))
def test_api_type_errors_say_type_and_name_the_argument(case):
    call, name = API[case]
    with pytest.raises(TypeError) as info:
        call()
    assert _says_type(str(info.value), name), str(info.value)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "m.py").write_text("import torch, steinkit as sk\nmodel = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((60, 2)))
    return tmp_path


def _test(d, *extra):
    return ["test", "--model", f"{d}/m.py:model", "--data", f"{d}/x.npy", *extra]


CLI = {
    "test --seed": (lambda d: _test(d, "--seed", "a"), "--seed"),
    "test --alpha": (lambda d: _test(d, "--alpha", "x"), "--alpha"),
    "evaluate --lam": (lambda d: ["evaluate", "--model", f"{d}/m.py:model", "--data", f"{d}/x.npy", "--lam", "abc"],
                       "--lam"),
    "demo --iters": (lambda d: ["demo", "--out", f"{d}/o", "--iters", "2.5"], "--iters"),
    "demo --n": (lambda d: ["demo", "--out", f"{d}/o", "--n", "many"], "--n"),
    "reproduce --dim": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/o", "--dim", "x"], "--dim"),
    "reproduce --lam": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/o", "--lam", "big"], "--lam"),
    "reproduce --jobs": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/o", "--jobs", "1.5"], "--jobs"),
    "option lam as a string": (lambda d: _test(d, "--method", "lsd", "--option", 'lam="0.5"'), "lam"),
    "option n_iters": (lambda d: _test(d, "--method", "lsd", "--option", "n_iters=2.5"), "n_iters"),
    "option n_bootstrap": (lambda d: _test(d, "--method", "ksd", "--option", "n_bootstrap=1e3"), "n_bootstrap"),
}


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_type_errors_say_type_and_name_the_flag(files, capsys, case):
    argv, name = CLI[case]
    try:
        code = main(argv(files))
    except SystemExit as exc:  # argparse's own error: usage line, then one error line
        code = exc.code
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and "error:" in last and _says_type(last, name), err
    assert not (files / "o").exists()
