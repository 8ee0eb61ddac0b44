"""What every exercise check shares: call the student's function, and report in one printed line.

A check prints ``correct: ...``, ``not solved yet: ...`` or ``not quite: <what is wrong>`` and returns a
:class:`Verdict`, true only when the function is right. It never raises, so a notebook runs top to
bottom with the exercise left open (the notebook then goes on with the package's version).
"""

from __future__ import annotations


class Verdict:
    """A check's outcome: true when the function is right, so ``if check(fn):`` and
    ``fn if check(fn) else reference`` read as they should.

    The printed line is the whole message, so a verdict shows nothing when a check is the last line of a
    notebook cell (Jupyter would otherwise echo a bare ``False`` under it). ``repr`` still says what it is.
    """

    __slots__ = ("solved",)

    def __init__(self, solved: bool):
        self.solved = bool(solved)

    def __bool__(self) -> bool:
        return self.solved

    def __repr__(self) -> str:
        return f"Verdict(solved={self.solved})"

    def _ipython_display_(self) -> None:
        """IPython calls this instead of echoing the value: display nothing (the check already printed)."""


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


def _report(fn, body, success: str | None = None) -> Verdict:
    """Run ``body`` (returns None when right, else what is wrong), print the verdict and return it."""
    try:
        message = body()
    except _Unsolved:
        print(f"not solved yet: {getattr(fn, '__name__', 'the function')} raises NotImplementedError; fill it "
              "in and run the cell again (the notebook goes on with the package's version)")
        return Verdict(False)
    if message is None:
        if success is not None:
            print(f"correct: {success}")
        return Verdict(True)
    print(f"not quite: {message}")
    return Verdict(False)
