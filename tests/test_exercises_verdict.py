"""A check's return value: true only when solved, and invisible when a check ends a notebook cell (Jupyter
used to echo a stray ``False`` under the check's own line)."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ldae_lite.exercises import schedule
from ldae_lite.exercises._check import Verdict

ROOT = Path(__file__).resolve().parents[1]


def test_verdict_is_truthy_only_when_solved():
    assert Verdict(True) and not Verdict(False)
    assert repr(Verdict(False)) == "Verdict(solved=False)"
    picked = "mine" if Verdict(False) else "package's"
    assert picked == "package's"


def test_ipython_displays_nothing_for_a_verdict():
    from IPython.core.interactiveshell import InteractiveShell

    formatter = InteractiveShell.instance().display_formatter
    assert formatter.format(Verdict(False)) == ({}, {})


def test_a_check_ending_a_cell_prints_its_line_and_nothing_else(capsys):
    def unsolved(T):
        raise NotImplementedError

    assert not schedule.check_linear_gamma2(unsolved)
    assert capsys.readouterr().out.startswith("not solved yet")
    cell = ("from ldae_lite.exercises import schedule\n\n\ndef linear_gamma2(T):\n    raise NotImplementedError\n\n\n"
            "schedule.check_linear_gamma2(linear_gamma2)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute(env=env)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream"], outputs  # no execute_result: no stray "False"
    assert outputs[0].text.startswith("not solved yet")
