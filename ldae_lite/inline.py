"""An inline module, written in a notebook to teach how it works, checked against the package's own.

A notebook re-types a DiT block (say) cell by cell so a student can read it; :func:`copy_and_compare`
then checks that the re-typed version computes what the package's does, so the rest of the notebook may
use either.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def copy_and_compare(inline: nn.Module, reference: nn.Module, *inputs, atol: float = 1e-6) -> float:
    """Load ``reference``'s weights into ``inline`` (strict: the parameter names must match), run both
    on ``inputs`` in eval mode and return the largest absolute difference of their outputs.

    Raises ValueError when the outputs differ by more than ``atol`` or have different shapes, so a
    notebook cell fails loudly if the inline version drifts from the package's.
    """
    inline.load_state_dict(reference.state_dict(), strict=True)
    inline.eval()
    reference.eval()
    a, b = inline(*inputs), reference(*inputs)
    if a.shape != b.shape:
        raise ValueError(f"inline output has shape {tuple(a.shape)}, the package's {tuple(b.shape)}")
    diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    if not torch.allclose(a.float(), b.float(), atol=atol, rtol=0.0):
        raise ValueError(f"inline and package outputs differ by up to {diff:.3g} (> atol={atol})")
    return diff
