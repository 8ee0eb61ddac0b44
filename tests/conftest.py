import sys

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny ops on a shared 2-core machine: one thread avoids OpenMP contention (20x faster there)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test leaves no matplotlib figure open (those that draw would otherwise pile them up)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")  # None: the test drew nothing
    if pyplot is not None:
        pyplot.close("all")
