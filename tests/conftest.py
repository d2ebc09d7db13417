"""Fixtures and hooks only; importable helpers live in ``helpers.py``."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests are small: one thread avoids oversubscribing CI's two cores."""
    torch.set_num_threads(1)
    yield
