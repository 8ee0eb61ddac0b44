"""Checks for the exercises of notebook 01 (the DiT baseline): adaLN's ``modulate`` and the "Zero" of
adaLN-Zero.

Each ``check_*`` runs the student's function on small random inputs, compares it with the package's own
version, prints one line (``correct: ...``, ``not solved yet: ...`` or ``not quite: <what is wrong>``)
and returns a true Verdict only when it is right. It never raises, so the notebook runs top to bottom with the
exercise left open.
"""

from __future__ import annotations

import torch

from ..models import DiTBlock, modulate
from ._check import Verdict, _call, _report

N, L, W = 3, 5, 8  # batch, tokens, width: all different, so a broadcasting mistake cannot hide


def _close(a, b) -> bool:
    return torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# exercise 1: modulate(x, shift, scale)
# --------------------------------------------------------------------------------------------------
def check_modulate(fn) -> Verdict:
    """fn(x (N, L, W), shift (N, W), scale (N, W)) -> (N, L, W): x * (1 + scale) + shift per sample."""
    def body():
        gen = torch.Generator().manual_seed(0)
        x, shift, scale = torch.randn(N, L, W, generator=gen), torch.randn(N, W, generator=gen), \
            torch.randn(N, W, generator=gen)
        out, err = _call(fn, x.clone(), shift.clone(), scale.clone())
        if err:
            if "size of tensor" in err or "must match" in err or "broadcast" in err:
                return (f"{err}. shift and scale are one vector per sample, (N, W) = {(N, W)}, while x is "
                        f"(N, L, W) = {(N, L, W)}: insert a token axis, shift.unsqueeze(1), so the same "
                        "affine map is applied to every token")
            return err
        if not torch.is_tensor(out):
            return f"modulate should return a tensor, got {type(out).__name__}"
        if tuple(out.shape) != (N, L, W):
            return f"the output has shape {tuple(out.shape)}; expected x's shape (N, L, W) = {(N, L, W)}"
        if _close(out, modulate(x, shift, scale)):
            return None
        s, c = shift.unsqueeze(1), scale.unsqueeze(1)
        mistakes = [
            (x * (1 + s) + c, "shift and scale are swapped: scale multiplies (x * (1 + scale)), shift is added"),
            (x * c + s, "the '1 +' is missing: with x * scale, a zero-initialised scale would wipe the "
                        "features out; adaLN uses x * (1 + scale) so that scale = 0 means 'leave x as it is'"),
            (x * s + c, "shift and scale are swapped and the '1 +' is missing: x * (1 + scale) + shift"),
            ((x + s) * (1 + c), "the shift is added before scaling: it must come after, x * (1 + scale) + shift"),
            (x * (1 + c) - s, "the shift has the wrong sign: + shift"),
            (x * (1 - c) + s, "the scale has the wrong sign: x * (1 + scale)"),
            (x * (1 + c), "the shift is missing: x * (1 + scale) + shift"),
            (x + s, "the scale is missing: x * (1 + scale) + shift"),
        ]
        for wrong, message in mistakes:
            if _close(out, wrong):
                return message
        if _close(out[0], modulate(x, shift, scale)[0]):
            return ("sample 0 is right but the others are not: each sample n uses its own shift[n] and "
                    "scale[n] (index the batch, do not reuse row 0)")
        return "the output differs from x * (1 + scale[:, None]) + shift[:, None]"

    return _report(fn, body, "modulate(x, shift, scale) = x * (1 + scale) + shift, per sample, for every token")


# --------------------------------------------------------------------------------------------------
# exercise 2: the "Zero" of adaLN-Zero
# --------------------------------------------------------------------------------------------------
def _non_modulation_params(block: DiTBlock) -> dict:
    return {k: v.detach().clone() for k, v in block.named_parameters() if not k.startswith("adaLN_modulation")}


def check_zero_init(fn) -> Verdict:
    """fn(block: DiTBlock) zero-initialises (in place) what makes the block the identity at start:
    the weight and bias of the Linear that regresses (shift, scale, gate) x 2 from c, and nothing else."""
    def body():
        torch.manual_seed(0)
        block = DiTBlock(W, heads=2)
        before = _non_modulation_params(block)
        linear = block.adaLN_modulation[-1]
        out, err = _call(fn, block)
        if err:
            return err
        if out is not None and out is not block:
            return "zero-initialise the block in place (and return nothing, or the same block)"
        w_zero, b_zero = bool((linear.weight == 0).all()), bool((linear.bias == 0).all())
        gen = torch.Generator().manual_seed(1)
        x, c = torch.randn(N, L, W, generator=gen), torch.randn(N, W, generator=gen)
        with torch.no_grad():
            y = block(x, c)
        if not w_zero and not b_zero:
            return ("block.adaLN_modulation[-1] (the Linear W -> 6W that regresses the shifts, scales and gates "
                    "from c) still has non-zero weights and bias: zero both")
        if not b_zero:
            return ("the weight is zero but the bias is not: then gate = bias, a constant that is not 0, so "
                    "the block is not the identity. Zero the bias too")
        if not w_zero:
            return ("the bias is zero but the weight is not: then gate = W c depends on c and is not 0. "
                    "Zero the weight too")
        after = _non_modulation_params(block)
        zeroed = [k for k in before if not torch.equal(before[k], after[k])]
        if zeroed:
            return (f"you also changed {zeroed}. Only the modulation Linear is zeroed: with a zero gate and a "
                    "zero MLP (or attention) both, the gate's gradient (the branch output) and the branch's "
                    "gradient (proportional to the gate) are both 0, so neither would ever learn")
        if not torch.allclose(y, x, atol=0.0, rtol=0.0):
            return "the block is still not the identity after your initialisation"
        return None

    return _report(fn, body, "every gate starts at 0, so block(x, c) == x for any c: the block starts as the "
                             "identity, and attention and MLP keep their random weights")


def zero_init_reference(block: DiTBlock) -> None:
    """The package's choice, as in DiT.initialize_weights (a reference for the tests)."""
    torch.nn.init.zeros_(block.adaLN_modulation[-1].weight)
    torch.nn.init.zeros_(block.adaLN_modulation[-1].bias)

