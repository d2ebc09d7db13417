"""Train an MLP energy with LSD (Algorithm 3) on several processes with PyTorch DDP.

Run with, e.g. (two CPU processes, gloo backend):

    torchrun --nproc_per_node=2 examples/ddp_train.py --dataset moons --steps 500

Every process holds the data and the same seed; each takes its share of every global batch of
``--batch-size`` rows, and DDP averages the gradients, so the run follows the same path as a
single-process ``steinkit.train.train`` call with the same global batch. Rank 0 writes the
checkpoint and prints the result; rerunning the command resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist

from steinkit.data import sample_toy
from steinkit.models import MLPEnergy
from steinkit.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="moons")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--critic-steps", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--checkpoint", default="ddp_train.pt")
    parser.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (one GPU per process)")
    args = parser.parse_args()

    dist.init_process_group(args.backend)
    rank = dist.get_rank()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)
    x = sample_toy(args.dataset, 20000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)  # same initial model on every rank (DDP also broadcasts rank 0's)
    ebm = MLPEnergy(2, hidden=args.hidden).init_base(x)
    result = train(
        ebm,
        x,
        method="lsd",
        steps=args.steps,
        batch_size=args.batch_size,
        critic_steps=args.critic_steps,
        checkpoint=args.checkpoint,
        seed=0,
        progress=rank == 0,
        device=device,  # this rank's GPU (or the CPU): model, critic and data move there
    )
    if rank == 0:
        print(result)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
