import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests are small: one thread avoids oversubscribing CI's two cores."""
    torch.set_num_threads(1)
    yield


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
