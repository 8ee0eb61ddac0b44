"""Checks at the boundary: what a caller passes in is checked once, where it enters, and every error
names the field, the value it got and what is allowed.

Python's own errors for a wrong type come from deep inside (a seed given as ``'0'`` ends in "not all
arguments converted during string formatting"); a value of the right type but the wrong meaning is often
accepted silently (``class_cond='no'`` is truthy, a negative subset size slices from the end). These
helpers make both fail at once, with a message a student can act on. Their errors are :class:`BadValue` (a
ValueError) and :class:`BadType` (a TypeError), both :class:`BadInput`: the command line turns them into
a usage error, with no traceback.

    >>> integer("steps", 16.5, low=1)
    Traceback (most recent call last):
    TypeError: steps must be an integer >= 1, got 16.5 (float)
"""

from __future__ import annotations

import dataclasses
import numbers
import types as types_mod
import typing
from typing import Iterable

import numpy as np
import torch

SEED_LIMIT = 2**32  # numpy's and torch's seeds both fit in [0, 2^32)


class BadInput(Exception):
    """Something a caller passed in is not allowed; the message names the field, the value and what is."""


class BadValue(BadInput, ValueError):
    """The right type, a value outside what is allowed."""


class BadType(BadInput, TypeError):
    """The wrong type (a string for a number, a float or a bool for an integer, ...)."""


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
        raise BadType(f"{name} must be an integer{_range_text(low, high)}, got {_got(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadValue(f"{name}={value} is out of range: it must be an integer{_range_text(low, high)}")
    return value


def optional_integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int | None:
    """None, or :func:`integer`."""
    return None if value is None else integer(name, value, low=low, high=high)


def real(name: str, value, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float (an int is fine, a bool or a string is not) in the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadType(f"{name} must be a number, got {_got(value)}")
    value = float(value)
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    outside = (value != value or value in (float("inf"), float("-inf"))
               or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and (value >= high if high_open else value > high)))
    if outside:
        raise BadValue(f"{name}={value} is out of range: it must be a finite number in {interval}")
    return value


def boolean(name: str, value) -> bool:
    """``value`` if it is a bool (or NumPy bool): ``'no'``, 0 or None are refused, not read as truth values."""
    if isinstance(value, bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise BadType(f"{name} must be True or False, got {_got(value)}")


def one_of(name: str, value, allowed: Iterable):
    """``value`` if it is one of ``allowed`` (compared with ==, so 1 and True are told apart by type)."""
    allowed = tuple(allowed)
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise BadValue(f"{name}={value!r} is not allowed; choose one of {allowed}")
    return value


def seed(value, name: str = "seed") -> int:
    """A seed: an integer in [0, 2^32)."""
    return integer(name, value, low=0, high=SEED_LIMIT - 1)


def seeds(values, name: str = "seeds") -> tuple[int, ...]:
    """A non-empty sequence of distinct seeds (a repeated seed would report a spread of zero)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise BadType(f"{name} must be a sequence of integer seeds, got {_got(values)}")
    out = tuple(seed(v, f"{name}[{i}]") for i, v in enumerate(values))
    if not out:
        raise BadValue(f"{name} is empty: give at least one seed, e.g. (0,) or (0, 1, 2)")
    return distinct(name, out, "seed")


def distinct(name: str, values, what: str = "value") -> tuple:
    """``values`` as a tuple if none repeats (a repeated seed would report a spread of zero, a repeated
    step a change of zero)."""
    values = tuple(values)
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise BadValue(f"{name}={list(values)} repeats {repeated}: each {what} must appear once")
    return values


def finite(x: torch.Tensor, where: str) -> torch.Tensor:
    """``x`` if every value is finite; otherwise an error that says where and how many are not."""
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        n_bad = int(bad.sum())
        if n_bad:
            n_nan = int(torch.isnan(x).sum())
            raise BadValue(f"{where}: {n_bad} of {x.numel()} values are not finite "
                           f"({n_nan} NaN, {n_bad - n_nan} inf); every value must be a finite number")
    return x


def labels(y: torch.Tensor, num_classes: int | None, where: str) -> torch.Tensor:
    """``y`` if it holds integer class labels in [0, num_classes) (None: any integer >= 0). One device sync
    (``any``) when they are fine; the details are gathered only for the error."""
    allowed = "integers >= 0" if num_classes is None else f"integers in [0, {num_classes})"
    if not isinstance(y, torch.Tensor):
        raise BadType(f"{where}: labels must be a tensor of {allowed}, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise BadType(f"{where}: labels must be {allowed}, got dtype {y.dtype}")
    outside = (y < 0) if num_classes is None else (y < 0) | (y >= num_classes)
    if y.numel() and bool(outside.any()):
        bad = y[outside]
        outside_text = "below 0" if num_classes is None else f"outside [0, {num_classes})"
        raise BadValue(f"{where}: {bad.numel()} labels {outside_text} (e.g. {int(bad[0])}); labels must be {allowed}")
    return y


# --------------------------------------------------------------------------------------------------
# records read back from JSON (results, reports): which fields are missing or of the wrong type
# --------------------------------------------------------------------------------------------------
def record(value, schema, where: str = "") -> list[str]:
    """What is wrong with ``value`` (parsed JSON) against ``schema``; [] when nothing is.

    schema: a type or a tuple of types (a float field takes an int; no number field takes a bool);
    a dict {field: schema}, where a field whose name ends in ``?`` may be missing; or a one-element list
    [schema], a list of such values. Fields the schema does not name are allowed (a newer writer's)."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where or 'the file'} is {_got(value)}, expected an object of fields"]
        problems = []
        for field, sub in schema.items():
            name = field.rstrip("?")
            if name in value:
                problems += record(value[name], sub, f"{where}.{name}" if where else name)
            elif not field.endswith("?"):
                problems.append(f"field '{where + '.' if where else ''}{name}' is missing")
        return problems
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"field '{where}' is {_got(value)}, expected a list"]
        return [p for i, item in enumerate(value) for p in record(item, schema[0], f"{where}[{i}]")]
    types = schema if isinstance(schema, tuple) else (schema,)
    accepted = types + ((int,) if float in types and int not in types else ())
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, accepted):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        return [f"field '{where}' is {_got(value)}, expected {names}"]
    return []


def dataclass_schema(cls) -> dict:
    """The :func:`record` schema of a dataclass's fields as JSON holds them: each field's annotated types,
    and ``?`` on the fields that have a default (an older file may lack them)."""
    hints = typing.get_type_hints(cls)
    schema = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        types = typing.get_args(hint) if isinstance(hint, types_mod.UnionType) else (typing.get_origin(hint) or hint,)
        optional = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        schema[f.name + ("?" if optional else "")] = tuple(types)
    return schema


__all__ = ["SEED_LIMIT", "BadInput", "BadType", "BadValue", "boolean", "dataclass_schema", "distinct", "finite",
           "integer", "labels", "one_of", "optional_integer", "real", "record", "seed", "seeds"]
