"""``make book`` (scripts/book.py): executed notebooks as HTML pages with an index; a failure is reported
clearly and still gets its page; what is built stays out of git."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "scripts" / "book.py"


def book(*args, **env):
    environment = {k: v for k, v in os.environ.items() if k != "LDAE_DATASET"}  # the default dataset
    environment.update(LDAE_BUDGET="smoke", OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, str(BOOK), *map(str, args)], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=900)


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {path.stem}")]
                                  + [nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)


def test_book_of_notebook_00(tmp_path):
    out = tmp_path / "book"
    done = book("--notebooks", "00", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    index, page = (out / "index.html").read_text(), (out / "00_setup_and_probe.html").read_text()
    assert 'href="00_setup_and_probe.html"' in index and "00 · Setup, data, and the yardstick" in index
    assert "budget <b>smoke</b>" in index and "dataset <b>fashion-mnist-m</b>" in index  # the default dataset
    assert "data:image/png;base64," in page  # the executed figures, inline
    assert "<table" in page and "raw pixels %" in page  # the reference table, rendered from Markdown
    assert "Fashion-MNIST-M train: 60,000 images (3x32x32)" in page and "Traceback" not in page
    assert 'href="index.html"' in page  # back to the series


def test_a_failed_notebook_is_reported_and_still_has_a_page(tmp_path):
    source, out = tmp_path / "notebooks", tmp_path / "book"
    source.mkdir()
    write_notebook(source / "00_fine.ipynb", "import os\nprint('cwd', os.getcwd())")
    write_notebook(source / "01_broken.ipynb", "x = 1", "x / 0", "print('never reached')")
    done = book("--source", source, "--out", out)
    assert done.returncode == 1
    assert "01_broken.ipynb: cell 3: ZeroDivisionError" in done.stderr and "00_fine" not in done.stderr
    assert f"cwd {source}" in (out / "00_fine.html").read_text()  # the kernel runs in the notebooks' folder
    broken = (out / "01_broken.html").read_text()
    assert "ZeroDivisionError" in broken and "never reached" in broken  # the source is shown, not its output
    index = (out / "index.html").read_text()
    assert "<b>failed</b>: cell 3: ZeroDivisionError" in index and 'href="00_fine.html"' in index

    write_notebook(source / "01_broken.ipynb", "print('fixed')")
    again = book("--source", source, "--out", out, "--notebooks", "01")
    assert again.returncode == 0, again.stderr
    index = (out / "index.html").read_text()
    assert "failed" not in index and 'href="00_fine.html"' in index  # the page built earlier stays listed


@pytest.mark.parametrize("args, message", [
    (("--notebooks", "42"), "--notebooks 42: no such notebook; choose among 00_setup_and_probe"),
    (("--dataset", "mnist"), "book: unknown dataset 'mnist'; choose one of ('fashion-mnist', 'fashion-mnist-m'"),
    (("--budget", "huge"), "book: unknown budget 'huge'; choose one of ('smoke', 'lecture', 'full')"),
])
def test_bad_arguments_say_what_is_allowed(tmp_path, args, message):
    spec = importlib.util.spec_from_file_location("book", BOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as stop:
        module.main([*args, "--out", str(tmp_path)])
    assert message in str(stop.value)
    assert not (tmp_path / "index.html").exists()


def test_built_pages_stay_out_of_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", "build/book/index.html"], cwd=ROOT)
    assert ignored.returncode == 0, "build/ must be git-ignored"
