"""Checks for the exercise of notebook 02 (removing class conditioning): classifier-free label dropout.

DiT trains its class-conditional model with label dropout: each label is replaced, with probability p,
by the null label (index ``num_classes``, a row of its own in the label table). One network then learns
both the conditional and the unconditional model, and our probe uses the null row (``DiT.features``).

``check_drop_labels`` prints one line (``correct: ...``, ``not solved yet: ...`` or ``not quite: ...``)
and returns a true Verdict only when the function is right. It never raises.
"""

from __future__ import annotations

import torch

from ._check import Verdict, _report, _Unsolved

K = 10  # classes


def drop_labels_reference(y: torch.Tensor, num_classes: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Each label replaced by the null label ``num_classes`` with probability p (a new tensor)."""
    drop = torch.rand(y.shape, generator=generator) < p  # (N,) bool
    return torch.where(drop, torch.full_like(y, num_classes), y)


def _run(fn, y, p, seed):
    try:
        return fn(y, K, p, torch.Generator().manual_seed(seed)), None
    except NotImplementedError:
        raise _Unsolved from None
    except Exception as e:  # noqa: BLE001
        return None, f"your function raised {type(e).__name__}: {e}"


def check_drop_labels(fn) -> Verdict:
    """fn(y (N,) long, num_classes, p, generator) -> (N,) long: label or num_classes (null) w.p. p."""
    def body():
        n = 20000
        y = torch.randint(K, (n,), generator=torch.Generator().manual_seed(0))
        original = y.clone()
        for p in (0.0, 0.1, 0.5, 1.0):
            out, err = _run(fn, y, p, seed=1)
            if err:
                return err
            if not torch.equal(y, original):
                return "your function changed its input y in place; return a new tensor (torch.where does)"
            if not torch.is_tensor(out) or out.shape != y.shape:
                return f"return a tensor of y's shape {tuple(y.shape)}, got {getattr(out, 'shape', type(out))}"
            if out.dtype != torch.long:
                return f"labels index an embedding table: return dtype torch.long, got {out.dtype}"
            kept = out == y
            dropped = ~kept
            if dropped.any():
                wrong = out[dropped].unique().tolist()
                if wrong != [K]:
                    hint = " (label 0 is a real class, 'T-shirt/top')" if 0 in wrong else ""
                    return (f"dropped labels became {wrong[:5]}; the null label is num_classes = {K}, the extra "
                            f"row of the table{hint}")
            frac = dropped.float().mean().item()
            if abs(frac - p) > 0.02:
                if abs(frac - (1 - p)) <= 0.02:
                    return (f"with p = {p} you dropped {frac:.0%} of the labels: the comparison is inverted, "
                            "a label is dropped (replaced) with probability p and kept with 1 - p")
                return f"with p = {p} you dropped {frac:.1%} of the labels; expected about {p:.0%}"
        out_a, _ = _run(fn, y, 0.5, seed=2)
        out_b, _ = _run(fn, y, 0.5, seed=2)
        if not torch.equal(out_a, out_b):
            return "draw the random numbers from the generator argument (torch.rand(..., generator=generator))"
        return None

    return _report(fn, body, "each label becomes the null label num_classes with probability p, independently")
