"""What every exercise check shares: call the student's function, and report in one printed line.

A check prints ``correct: ...``, ``not solved yet: ...`` or ``not quite: <what is wrong>`` and returns
True only when the function is right. It never raises, so a notebook runs top to bottom with the
exercise left open (the notebook then goes on with the package's version).
"""

from __future__ import annotations


class _Unsolved(Exception):
    """The student's function still raises NotImplementedError."""


def _call(fn, *args):
    """fn(*args) as (output, None), or (None, message) when it fails; NotImplementedError -> _Unsolved."""
    try:
        return fn(*args), None
    except NotImplementedError:
        raise _Unsolved from None
    except Exception as e:  # noqa: BLE001 - the student's error is reported, not raised
        return None, f"your function raised {type(e).__name__}: {e}"


def _report(fn, body, success: str | None = None) -> bool:
    """Run ``body`` (returns None when right, else what is wrong) and print the verdict."""
    try:
        message = body()
    except _Unsolved:
        print(f"not solved yet: {getattr(fn, '__name__', 'the function')} raises NotImplementedError; fill it "
              "in and run the cell again (the notebook goes on with the package's version)")
        return False
    if message is None:
        if success is not None:
            print(f"correct: {success}")
        return True
    print(f"not quite: {message}")
    return False
