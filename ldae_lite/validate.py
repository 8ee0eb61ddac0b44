"""Checks at the boundary: what a caller passes in is checked once, where it enters, and every error
names the field, the value it got and what is allowed.

Python's own errors for a wrong type come from deep inside (a seed given as ``'0'`` ends in "not all
arguments converted during string formatting"); a value of the right type but the wrong meaning is often
accepted silently (``class_cond='no'`` is truthy, a negative subset size slices from the end). These
helpers make both fail at once, with a message a student can act on.

    >>> integer("steps", 16.5, low=1)
    Traceback (most recent call last):
    TypeError: steps must be an integer >= 1, got 16.5 (float)
"""

from __future__ import annotations

import numbers
from typing import Iterable

import numpy as np
import torch

SEED_LIMIT = 2**32  # numpy's and torch's seeds both fit in [0, 2^32)


def _range_text(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def _got(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int: a Python or NumPy integer (not a bool, a float or a string) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{_range_text(low, high)}, got {_got(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value} is out of range: it must be an integer{_range_text(low, high)}")
    return value


def optional_integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int | None:
    """None, or :func:`integer`."""
    return None if value is None else integer(name, value, low=low, high=high)


def real(name: str, value, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float (an int is fine, a bool or a string is not) in the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_got(value)}")
    value = float(value)
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    outside = (value != value or value in (float("inf"), float("-inf"))
               or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and (value >= high if high_open else value > high)))
    if outside:
        raise ValueError(f"{name}={value} is out of range: it must be a finite number in {interval}")
    return value


def boolean(name: str, value) -> bool:
    """``value`` if it is a bool (or NumPy bool): ``'no'``, 0 or None are refused, not read as truth values."""
    if isinstance(value, bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {_got(value)}")


def one_of(name: str, value, allowed: Iterable):
    """``value`` if it is one of ``allowed`` (compared with ==, so 1 and True are told apart by type)."""
    allowed = tuple(allowed)
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {allowed}")
    return value


def seed(value, name: str = "seed") -> int:
    """A seed: an integer in [0, 2^32)."""
    return integer(name, value, low=0, high=SEED_LIMIT - 1)


def seeds(values, name: str = "seeds") -> tuple[int, ...]:
    """A non-empty sequence of distinct seeds (a repeated seed would report a spread of zero)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of integer seeds, got {_got(values)}")
    out = tuple(seed(v, f"{name}[{i}]") for i, v in enumerate(values))
    if not out:
        raise ValueError(f"{name} is empty: give at least one seed, e.g. (0,) or (0, 1, 2)")
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        raise ValueError(f"{name}={list(out)} repeats {repeated}: each seed must appear once")
    return out


def finite(x: torch.Tensor, where: str) -> torch.Tensor:
    """``x`` if every value is finite; otherwise an error that says where and how many are not."""
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        n_bad = int(bad.sum())
        if n_bad:
            n_nan = int(torch.isnan(x).sum())
            raise ValueError(f"{where}: {n_bad} of {x.numel()} values are not finite "
                             f"({n_nan} NaN, {n_bad - n_nan} inf); every value must be a finite number")
    return x


def labels(y: torch.Tensor, num_classes: int, where: str) -> torch.Tensor:
    """``y`` if it holds integer class labels in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{where}: labels must be a tensor of integers, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{where}: labels must be integers in [0, {num_classes}), got dtype {y.dtype}")
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            bad = y[(y < 0) | (y >= num_classes)]
            raise ValueError(f"{where}: {bad.numel()} labels outside [0, {num_classes}) (e.g. {int(bad[0])}); "
                             f"labels must be integers in [0, {num_classes})")
    return y


__all__ = ["SEED_LIMIT", "boolean", "finite", "integer", "labels", "one_of", "optional_integer", "real", "seed",
           "seeds"]
