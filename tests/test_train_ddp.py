"""The trainer under PyTorch DDP: two CPU processes on gloo make the single-process update.

Each scenario trains from the same initial state on the same data and seed, once with two
processes (each taking half of every global batch) and once in this process; the parameters
must agree to float64 rounding. The flow scenario also checks that ActNorm initialises on the
whole first batch on every process (not on each process's half).
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from steinkit.critics import MLPCritic
from steinkit.models import Gaussian, GlowFlow, MLPEnergy
from steinkit.train import train

WORLD = 2
DTYPE = torch.float64


def _scenarios() -> dict[str, tuple]:
    """name -> build() -> (model, train kwargs[, data])."""

    def lsd_ebm():
        torch.manual_seed(0)
        ebm = MLPEnergy(2, hidden=8, dtype=DTYPE)
        critic = MLPCritic(2, hidden=8, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
        return ebm, {"method": "lsd", "critic": critic, "critic_steps": 2, "lam": 0.5}

    def ssm_ebm():
        torch.manual_seed(0)
        return MLPEnergy(2, hidden=8, dtype=DTYPE), {"method": "ssm"}

    def nce_gauss():
        q = Gaussian(torch.zeros(2, dtype=DTYPE), torch.eye(2, dtype=DTYPE))
        q.cov.requires_grad_(False)
        return q, {"method": "nce"}

    def ml_flow_epochs():
        flow = GlowFlow((1, 4, 4), 1, 1, 4, generator=torch.Generator().manual_seed(2)).to(DTYPE)
        data = torch.randn(40, 16, generator=torch.Generator().manual_seed(6), dtype=DTYPE) * 2 + 1
        return flow, {"method": "ml", "batch_order": "epochs", "betas": (0.9, 0.999)}, data

    return {"lsd_ebm": lsd_ebm, "ssm_ebm": ssm_ebm, "nce_gauss": nce_gauss, "ml_flow_epochs": ml_flow_epochs}


def _data() -> torch.Tensor:
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(5), dtype=DTYPE) + 0.5


def _run(name: str) -> dict[str, torch.Tensor]:
    model, kw, *data = _scenarios()[name]()
    res = train(model, data[0] if data else _data(), steps=3, batch_size=8, lr=1e-2, seed=7, progress=False, log_every=1, **kw)
    state = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    if res.critic is not None:
        state.update({f"critic.{k}": v.detach().clone() for k, v in res.critic.state_dict().items()})
    if res.log_normalizer is not None:
        state["log_c"] = torch.tensor(res.log_normalizer, dtype=DTYPE)
    state["loss"] = torch.tensor([h["loss"] for h in res.history], dtype=DTYPE)
    state["world_size"] = torch.tensor(res.world_size)
    return state


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for name in _scenarios():
            state = _run(name)
            if rank == 0:
                torch.save(state, os.path.join(out_dir, f"{name}.pt"))
        dist.barrier()  # neither rank tears gloo down while the other still talks
        if rank == 0:
            open(os.path.join(out_dir, "done"), "w").close()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_states(tmp_path_factory):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.terminate()
                pytest.fail("DDP workers did not finish within 120 s")
    except mp.ProcessExitedException:
        # gloo sometimes aborts ("terminate called without an active exception") while a
        # process exits after destroy_process_group; the results written before that count.
        if not (out / "done").exists():
            raise
    return {name: torch.load(out / f"{name}.pt") for name in _scenarios()}


@pytest.mark.parametrize("name", list(_scenarios()))
def test_two_process_ddp_update_equals_the_single_process_update(ddp_states, name):
    single = _run(name)
    multi = ddp_states[name]
    assert int(multi.pop("world_size")) == WORLD and int(single.pop("world_size")) == 1
    assert set(single) == set(multi)
    # The flow's convolutions sum the two halves' gradients in another order; Adam's first steps
    # magnify that rounding to ~1e-11 (an ActNorm initialised per half would differ by ~1e-1).
    rtol, atol = (1e-8, 1e-9) if "flow" in name else (1e-9, 1e-11)
    for key in single:
        torch.testing.assert_close(multi[key], single[key], rtol=rtol, atol=atol, msg=key)
    # and training did change the model
    model0 = _scenarios()[name]()[0]
    changed = [not torch.equal(v, single[f"model.{k}"]) for k, v in model0.state_dict().items()]
    assert any(changed)
