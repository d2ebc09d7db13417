"""Plain helpers shared by the test modules (``from helpers import gen``).

``conftest.py`` holds only fixtures and hooks; anything a test imports lives here, so no test
module imports ``conftest`` or another test module. pytest puts this folder on ``sys.path``
(rootdir-relative "prepend" import mode), and so do the runner tests for their worker
processes, which import the trial functions below by reference.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

__all__ = ["gen", "square", "counted", "where", "not_a_dict", "slow", "napping", "refuse"]


def gen(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


# --- trial functions for the sweep runner (module level, so worker processes can import them) ---

def square(config: dict) -> dict:
    return {"y": config["x"] ** 2}


def counted(config: dict) -> dict:
    """Fails on x == fail_at while the flag file exists; logs each successful execution."""
    if config["x"] == config["fail_at"] and Path(config["flag"]).exists():
        raise RuntimeError(f"trial {config['x']} crashed")
    with open(config["log"], "a") as fh:
        fh.write(f"{config['x']}\n")
    return {"y": 10 * config["x"]}


def where(config: dict) -> dict:
    return {"pid": os.getpid(), "threads": torch.get_num_threads()}


def not_a_dict(config: dict) -> list:
    return [1]


def slow(config: dict) -> dict:
    time.sleep(0.25)
    with open(config["log"], "a") as fh:
        fh.write(f"{config['x']}\n")
    return {"x": config["x"]}


def napping(config: dict) -> dict:
    """Logs "i pid" to ``config["log"]`` as it starts, sleeps ``config["sleep"]`` seconds, returns its
    config, the worker's pid and whether it runs in a connected ray worker (cluster tests)."""
    with open(config["log"], "a") as fh:
        fh.write(f"{config['i']} {os.getpid()}\n")
    time.sleep(config["sleep"])
    ray = sys.modules.get("ray")
    return {"config": config, "pid": os.getpid(), "in_ray": bool(ray is not None and ray.is_initialized())}


def refuse(config: dict) -> dict:
    """Fails on every call: a rerun that calls it ran a trial that was already stored."""
    raise AssertionError(f"trial {config} ran again although it was stored")
