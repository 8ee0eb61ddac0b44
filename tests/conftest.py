import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny ops on a shared 2-core machine: one thread avoids OpenMP contention (20x faster there)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
