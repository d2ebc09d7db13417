"""Where an epoch of the image EBM's LSD training goes (issue 16): one update's parts against the BLAS floor.

One model update of the Figure-9 EBM (B.6: 784-d data, 2×1000 Swish energy and critic, batch
100, 5 critic updates per model update) timed part by part, beside a 1000³ matrix product
that gives this machine's sustained GFLOP/s. An epoch of 60,000 images is 600 updates.

Usage: python benchmarks/images_epoch.py [THREADS=1]   (prints a JSON line last)
"""

from __future__ import annotations

import json
import sys
import time

import torch

from steinkit.critics import MLPCritic
from steinkit.models import MLPEnergy


def seconds(fn, repeat: int = 10) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d, batch = 784, 100
    x = torch.randn(batch, d)
    ebm, critic = MLPEnergy(d, hidden=1000), MLPCritic(d, hidden=1000, generator=torch.Generator().manual_seed(0))
    opt_c = torch.optim.Adam(critic.parameters(), 1e-4, betas=(0.5, 0.9))
    opt_m = torch.optim.Adam(ebm.parameters(), 1e-4, betas=(0.5, 0.9))

    def critic_step() -> None:
        with torch.no_grad():
            s = ebm.score(x)
        terms, f = critic.stein_terms(x, s)
        loss = -(terms.mean() - 10 * (f * f).sum(-1).mean())
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()

    def model_step() -> None:
        with torch.no_grad():
            f = critic(x)
        loss = (ebm.score(x) * f).sum(-1).mean()
        opt_m.zero_grad()
        loss.backward()
        opt_m.step()

    a, b = torch.randn(1000, 1000), torch.randn(1000, 1000)
    gflops = 2e9 / seconds(lambda: a @ b, 20) / 1e9
    c, m = seconds(critic_step), seconds(model_step)
    update = 5 * c + m
    print(json.dumps({"threads": threads, "sgemm_gflops": gflops, "critic_step_ms": 1e3 * c, "model_step_ms": 1e3 * m,
                      "update_s": update, "epoch_s": 600 * update, "hundred_epochs_h": 600 * update * 100 / 3600}))


if __name__ == "__main__":
    main()
