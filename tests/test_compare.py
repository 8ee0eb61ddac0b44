"""compare: a report read against the paper, against raw pixels and against other reports."""

from _tiny import fake_report

from ldae_lite import compare
from ldae_lite.recipes import TRAJECTORY


def test_summary_reads_the_numbers():
    # last 5 steps; paper: 62.4, 63.6, 63.6, 63.9, 64.5 (deltas -2.7 from patch_pca, +1.2, 0, +0.3, +0.6)
    rep = fake_report([85.0, 84.0, 84.5, 84.7, 84.6, 85.2])
    text = compare.reproduction_summary(rep)
    assert "**3 of 4**" in text and "**1**" in text and "image_output" in text  # image_output went down
    assert "no change" in text and "+0.20" in text  # image_input: paper 0.0, ours +0.2
    assert "Stage 3" in text and "ours +0.20, paper -0.6" in text
    assert "raw pixels (+5.20)" in text and "no error bar" in text


def test_versus_raw_pixels_table():
    full = fake_report([60.0 + i for i in range(13)], stds=[0.5] * 13)  # raw pixels 80.0, l-DAE 72.0
    part = fake_report([85.0, 86.5])  # only the last two steps: no first legitimate step
    md = compare.versus_raw_pixels([("a", full), ("b", part)])
    lines = md.splitlines()
    assert len(lines) == 4 and "l-DAE − raw pixels" in lines[0]
    assert "| 62.00 ± 0.50 | 72.00 ± 0.50 | -8.00 |" in lines[2]  # step 3 is the first legitimate one
    assert lines[3].endswith("| – | 86.50 | +6.50 |")


def test_changes_side_by_side():
    # all 13 steps, each 1 point above the last: the paper's sign wherever its change is positive
    up = fake_report([60.0 + i for i in range(13)])
    for r in up["steps"][1:]:
        r["within_noise"] = False
    part = fake_report([85.0, 84.0])  # steps 12 and 13 only: one change, into step 13
    lines = compare.changes_side_by_side([("up", up), ("part", part)]).splitlines()
    assert lines[0] == "| # | step | Δ paper | Δ up | Δ part |" and len(lines) == 2 + 12 + 1
    assert lines[2].startswith("| 2 | remove class conditioning | +5.0 | +1.00 (paper's sign, beyond noise) | – |")
    assert "| -4.1 | +1.00 (opposite sign, beyond noise) |" in lines[3]  # step 3: the paper lost 4.1
    assert "(paper: 0, beyond noise)" in lines[11]  # step 11: the paper's change is 0.0
    assert lines[13].endswith("| -1.00 (opposite sign) |")  # paper +0.6; no std: no noise verdict
    positive = sum(1 for a, b in zip(TRAJECTORY, TRAJECTORY[1:]) if b.paper_accuracy > a.paper_accuracy)
    assert lines[-1] == f"|  | paper's sign and beyond noise |  | {positive} of 11 | 0 of 1 |"
