"""inline: a module re-typed in a notebook, checked against the package's."""

import pytest
import torch
from torch import nn

from ldae_lite import inline
from ldae_lite.models import TimestepEmbedder


def test_copy_and_compare_copies_weights_and_detects_drift():
    ref = TimestepEmbedder(16, mlp_hidden=4)
    twin = TimestepEmbedder(16, mlp_hidden=4)
    t = torch.tensor([0.0, 10.0, 999.0])
    assert inline.copy_and_compare(twin, ref, t) == 0.0

    class Drifted(TimestepEmbedder):
        def forward(self, t):
            return super().forward(t) + 1e-3

    with pytest.raises(ValueError, match="differ"):
        inline.copy_and_compare(Drifted(16, mlp_hidden=4), ref, t)
    with pytest.raises(RuntimeError):  # parameter names must match
        inline.copy_and_compare(nn.Linear(3, 3), ref, t)
