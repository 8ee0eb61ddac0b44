"""``make book``: the notebook series, executed, as static HTML pages for reading or projecting in a lecture.

Every notebook of ``notebooks/`` runs top to bottom in a fresh kernel whose working directory is
``notebooks/`` (as in Jupyter), at the current budget and dataset (``$LDAE_BUDGET``, ``$LDAE_DATASET``, or
``--budget`` / ``--dataset``), and becomes ``build/book/<notebook>.html``. ``build/book/index.html`` is the
table of the series, linking every page, with the budget, dataset, date and machine each page was built
with. Trained runs come from the run cache (``runs/``), so a second build executes the cells again but
trains nothing. ``build/`` is git-ignored.

A notebook that fails still gets its page, executed up to the failing cell with the error shown there; the
index marks it failed, the script names it and its error on stderr, and exits with status 1.

    python scripts/book.py                      # the whole series
    python scripts/book.py --notebooks 00 04    # only these (the index keeps pages built earlier)
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's ldae_lite, installed or not

from ldae_lite import budgets, data, device  # noqa: E402 - after the path is set
from ldae_lite.cache import write_text  # noqa: E402 - atomic: a crash leaves the old file or the new

TITLE = "ldae_lite: deconstructing denoising diffusion models for self-supervised learning"
MANIFEST = "book.json"  # what each page was built with, so a partial rebuild keeps the rest of the index


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebooks", nargs="+", default=None, metavar="PREFIX",
                   help="build only the notebooks whose file name starts with one of these (e.g. 00 04)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "book", help="where the pages go (default build/book)")
    p.add_argument("--source", type=Path, default=ROOT / "notebooks", help="the notebooks' folder (default notebooks/)")
    p.add_argument("--budget", default=None, help=f"default: ${budgets.ENV_VAR} or {budgets.DEFAULT}")
    p.add_argument("--dataset", default=None, help=f"default: ${data.ENV_VAR} or {data.DEFAULT}")
    p.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    return p.parse_args(argv)


def select(source: Path, prefixes) -> list[Path]:
    """The notebooks to build, in series order; an unknown prefix is an error naming the notebooks there."""
    every = sorted(source.glob("*.ipynb"))
    if not every:
        raise SystemExit(f"no notebooks in {source}")
    if prefixes is None:
        return every
    unknown = [p for p in prefixes if not any(nb.name.startswith(p) for nb in every)]
    if unknown:
        raise SystemExit(f"--notebooks {' '.join(unknown)}: no such notebook; choose among "
                         f"{', '.join(nb.stem for nb in every)}")
    return [nb for nb in every if any(nb.name.startswith(p) for p in prefixes)]


def title_of(nb) -> str:
    """The notebook's first Markdown heading (``# 00 · Setup, data, and the yardstick``), without the ``#``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def execute(path: Path, env: dict, timeout: int) -> tuple[nbformat.NotebookNode, str | None, float]:
    """Run a notebook in a fresh kernel (working directory: its folder). Returns the executed notebook,
    None or what failed (the notebook then holds the outputs up to and including the failing cell), and
    the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # the kernel's cwd
    start, error = time.perf_counter(), None
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        failed = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                                                                  for o in c.get("outputs", []))), None)
        where = "" if failed is None else f"cell {failed + 1}: "  # counting every cell from 1, as on the page
        error = f"{where}{e.ename}: {e.evalue}"
    except CellTimeoutError as e:
        error = f"a cell ran longer than {timeout} s ({str(e).splitlines()[0]})"
    except DeadKernelError as e:
        error = f"the kernel died ({e})"
    return nb, error, time.perf_counter() - start


def page(nb, title: str, nav: str) -> str:
    """The executed notebook as one self-contained HTML page (images inline), a navigation bar on top."""
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb, resources={"metadata": {"name": title}})
    bar = f'<nav style="font: 14px sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd">{nav}</nav>'
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, body, count=1)


def navigation(stems: list[str], i: int) -> str:
    links = ['<a href="index.html">the series</a>']
    if i > 0:
        links.append(f'<a href="{stems[i - 1]}.html">&larr; {stems[i - 1]}</a>')
    if i + 1 < len(stems):
        links.append(f'<a href="{stems[i + 1]}.html">{stems[i + 1]} &rarr;</a>')
    return " &nbsp;|&nbsp; ".join(links)


def build_info(budget, dataset: str) -> dict:
    """What a page was built with: budget, dataset, date, machine and commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"budget": budgets.label(budget), "dataset": dataset, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": f"{platform.node()}, {device.describe(device.get_device(verbose=False))}",
            "commit": commit or "?"}


def index(entries: dict, info: dict) -> str:
    """The table of the series: one row per page, linked; a row built by an earlier run says with what."""
    rows = []
    for stem, e in sorted(entries.items()):
        status = "ok" if e["error"] is None else f"<b>failed</b>: {html.escape(e['error'])}"
        built = {k: e[k] for k in ("budget", "dataset", "date")}
        note = "" if built == {k: info[k] for k in built} else (
            f" (built {e['date']}, budget {e['budget']}, dataset {e['dataset']})")
        rows.append(f'<tr><td><a href="{stem}.html">{html.escape(e["title"] or stem)}</a></td><td>{status}'
                    f'{html.escape(note)}</td><td style="text-align:right">{e["seconds"]:.0f} s</td></tr>')
    meta = " &middot; ".join(f"{k} <b>{html.escape(str(v))}</b>" for k, v in info.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(TITLE)}</title>
<style>body {{ font: 16px/1.5 sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em }}
table {{ border-collapse: collapse; width: 100% }} td, th {{ border-bottom: 1px solid #ddd; padding: 6px 8px }}
th {{ text-align: left }}</style></head>
<body><h1>{html.escape(TITLE)}</h1>
<p>The notebook series re-enacting arXiv 2401.14404, executed top to bottom. {meta}</p>
<table><tr><th>notebook</th><th>status</th><th>executed in</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        budget, dataset = budgets.get_budget(args.budget), data.dataset_name(args.dataset)
    except ValueError as e:  # an unknown name: the message lists the allowed ones
        raise SystemExit(f"book: {e}") from None
    paths = select(args.source, args.notebooks)
    env = {**os.environ, budgets.ENV_VAR: budget.name, data.ENV_VAR: dataset,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    info = build_info(budget, dataset)
    manifest_path = args.out / MANIFEST
    entries = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    entries = {k: e for k, e in entries.items() if (args.out / f"{k}.html").exists()}
    stems = sorted({p.stem for p in args.source.glob("*.ipynb")})
    print(f"book: {len(paths)} notebook(s), budget {info['budget']}, dataset {dataset}, into {args.out}")
    failed = []
    for n, path in enumerate(paths, 1):
        print(f"[{n}/{len(paths)}] {path.name} ...", flush=True)
        nb, error, seconds = execute(path, env, args.timeout)
        title = title_of(nb) or path.stem
        write_text(args.out / f"{path.stem}.html", page(nb, title, navigation(stems, stems.index(path.stem))))
        entries[path.stem] = {"title": title, "error": error, "seconds": seconds,
                              **{k: info[k] for k in ("budget", "dataset", "date")}}
        write_text(manifest_path, json.dumps(entries, indent=1))
        print(f"    {'ok' if error is None else 'FAILED, ' + error} ({seconds:.0f} s)", flush=True)
        if error is not None:
            failed.append(f"{path.name}: {error}")
    write_text(args.out / "index.html", index(entries, info))
    print(f"book: {args.out / 'index.html'}")
    for line in failed:
        print(f"book: notebook failed: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
