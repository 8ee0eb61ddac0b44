"""levers: the shipped levers table read back by group and written as Markdown (levers.md reproduced)."""

import json

import pytest

from ldae_lite import cache, levers


def test_to_markdown_reproduces_the_shipped_table():
    shipped = sorted(cache.RESULTS_DIR.glob("*/levers.json"))
    assert shipped
    for path in shipped:
        table = json.loads(path.read_text())
        assert levers.to_markdown(table["meta"], table["rows"]) == path.with_suffix(".md").read_text(), path


def test_reference_reads_the_shipped_table(tmp_path):
    meta, rows = levers.reference("label")
    assert meta["budget"] == "lecture" and "scripts/levers.py" in meta["command"]
    assert rows and all(r["group"] == "label" for r in rows)
    assert {r["dataset"] for r in rows} == {"fashion-mnist", "fashion-mnist-m"}
    text = levers.group_markdown(meta, rows)
    assert meta["commit"] in text and f"{rows[0]['accuracy']:.2f}" in text
    with pytest.raises(ValueError, match="group='nope'.*its groups are"):
        levers.reference("nope")
    assert levers.reference("label", folder=tmp_path) is None  # no table there


def test_changes_markdown():
    meta = dict(budget="lecture", device="cpu", commit="abc", created="now", command="python scripts/levers.py",
                changes=[dict(group="4x", change="predict clean data", dataset="d", training="1200 steps",
                              before=[65.0, 66.0, 65.5], after=[64.0, 64.5, 64.0]),
                         dict(group="label", change="remove class conditioning", dataset="d",
                              training="300 steps", before=[60.0], after=[59.2])])
    text = levers.changes_markdown(meta)
    assert "- predict clean data, d, 1200 steps: -1.33 ± 0.29 (3 seeds: 65.50 ± 0.50 -> 64.17 ± 0.29); " \
           "beyond noise (two standard errors: 0.67)" in text
    assert "remove class conditioning, d, 300 steps: -0.80 (one seed: 60.00 -> 59.20)" in text
    assert "class conditioning" not in levers.changes_markdown(meta, {"4x"})
    assert levers.changes_markdown(meta, {"probe"}) == ""
    rows = [dict(group="4x", dataset="d", what="x", accuracy=64.0, note="")]
    assert "predict clean data" in levers.group_markdown(meta, rows)
