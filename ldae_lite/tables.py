"""Numbers and Markdown tables, as every notebook, report and results file shows them.

One formatter (:func:`fmt`, with :func:`fmt_mean_std` for a mean over seeds) and one table builder
(:func:`markdown_table`; pandas is not a dependency), so that a number reads the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EMPTY = "–"  # an en dash: a missing number


def fmt(value, digits: int = 1, signed: bool = False, empty: str = EMPTY) -> str:
    """A number for a table or a sentence: ``digits`` decimals, a sign when ``signed``; None (or NaN)
    becomes ``empty``. One decimal by default, as the paper reports its accuracies."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return empty
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_mean_std(mean, std=None, digits: int = 2) -> str:
    """``mean ± std`` over seeds; the mean alone when there is no std (one seed)."""
    return fmt(mean, digits) + ("" if std is None else f" ± {fmt(std, digits)}")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table, one line per row. A float cell gets 2 decimals, None an en dash, anything else
    ``str()``; a ``|`` inside a cell is escaped. ValueError when a row has another number of cells."""
    bad = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"every row needs {len(header)} cells (one per header); rows {bad} have "
                         f"{[len(rows[i]) for i in bad]}")

    def line(cells):
        return "| " + " | ".join(_cell(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


def _cell(value) -> str:
    return fmt(value, 2) if isinstance(value, float) or value is None else str(value)
