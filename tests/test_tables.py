"""tables: the one number formatter and the one Markdown table builder."""

import pytest

from ldae_lite import tables


def test_fmt():
    assert tables.fmt(None) == "–" and tables.fmt(float("nan")) == "–" and tables.fmt(None, empty="") == ""
    assert tables.fmt(1.234, 2) == "1.23" and tables.fmt(2.0, signed=True) == "+2.0" and tables.fmt(3) == "3.0"
    assert tables.fmt_mean_std(1.0, 0.25) == "1.00 ± 0.25" and tables.fmt_mean_std(1.0) == "1.00"


def test_markdown_table():
    md = tables.markdown_table(["a", "b"], [[1.234, None], ["x|y", 2]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | – |", "| x\\|y | 2 |"]
    with pytest.raises(ValueError, match="every row needs 1 cells.*rows \\[0\\]"):
        tables.markdown_table(["a"], [[1, 2]])
