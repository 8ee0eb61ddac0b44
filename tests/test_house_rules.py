"""The house rules that keep the code readable top to bottom, checked on the source (nothing is imported):

1. No module of ldae_lite is longer than MODULE_LIMIT lines: one concept per module.
2. No function of the package, the scripts or the benchmarks is longer than FUNCTION_LIMIT lines (from its
   ``def`` to its last line), unless a comment saying why, ``# long: <why>``, stands on its def line or in
   the comment lines right above it (above its decorators).
3. Files are renamed into place in one function only, ``checkpoint.atomic_write``: no other ``os.replace``
   or ``os.rename``. Everything else that writes a file calls it (or ``atomic_save``, ``cache.write_json``,
   ``cache.write_text``), so that a crash leaves the old file or the new one, never half of one.
4. No file of the repository names an absolute path outside it, except the system locations and
   placeholders of ALLOWED_ABSOLUTE (a data set installed by the system's package manager, a temporary
   folder in an example). Notes that are not in the repository are test_links.py's business.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from test_links import FILES, rel

ROOT = Path(__file__).resolve().parents[1]
MODULE_LIMIT = 400  # lines; aim for about 350
FUNCTION_LIMIT = 60  # lines, def line and docstring included
LONG_WHY = re.compile(r"#\s*long:\s*\S")  # "# long: the whole loop reads in one place"
RENAMES = {("os", "replace"), ("os", "rename")}
ONLY_RENAME = "ldae_lite/checkpoint.py"
ALLOWED_ABSOLUTE = ("/usr/share/datasets/", "/usr/bin/env", "/proc/", "/dev/", "/tmp/",
                    "/some/", "/path/to/")  # the last two: placeholders in usage lines
# An absolute path: "/" after a space, quote, backtick, bracket or line start (so not inside a relative path,
# a URL or a fraction), then at least one folder.
_ABSOLUTE = re.compile(r"(?<![\w.:/~\-\])}$>])/(?:[A-Za-z_][\w.\-]*/)+[\w.\-]*")

PYTHON = [p for p in FILES if p.suffix == ".py"]
PACKAGE = [p for p in PYTHON if rel(p).startswith("ldae_lite/")]
CODE = [p for p in PYTHON if rel(p).split("/")[0] in ("ldae_lite", "scripts", "benchmarks")]


def long_functions(source: str) -> list[tuple[str, int, int]]:
    """(name, line, length) of each function over FUNCTION_LIMIT lines without a ``# long:`` comment."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > FUNCTION_LIMIT and not _says_why(lines, node):
            found.append((node.name, node.lineno, length))
    return found


def _says_why(lines: list[str], node: ast.FunctionDef) -> bool:
    """A ``# long:`` comment on the def line, or in the block of comment lines right above the function."""
    if LONG_WHY.search(lines[node.lineno - 1]):
        return True
    above = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 2  # index of the line above
    while above >= 0 and lines[above].strip().startswith("#"):
        if LONG_WHY.search(lines[above]):
            return True
        above -= 1
    return False


def renames(source: str) -> list[int]:
    """Lines that call os.replace / os.rename, or import them from os."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in RENAMES:
                found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [node.lineno for a in node.names if ("os", a.name) in RENAMES]
    return sorted(found)


def absolute_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of each absolute path in text that is not under ALLOWED_ABSOLUTE."""
    return [(number, m.group(0)) for number, line in enumerate(text.splitlines(), 1)
            for m in _ABSOLUTE.finditer(line) if not m.group(0).startswith(ALLOWED_ABSOLUTE)]


# -- the rules on the repository -------------------------------------------------------------------------
def test_there_is_code_to_check():
    assert ROOT / ONLY_RENAME in PACKAGE and any(rel(p).startswith("scripts/") for p in CODE)


def test_modules_are_short():
    over = [f"{rel(p)}: {n} lines" for p in PACKAGE if (n := len(p.read_text().splitlines())) > MODULE_LIMIT]
    assert not over, f"modules over {MODULE_LIMIT} lines (split them along their concepts):\n" + "\n".join(over)


def test_functions_are_short_or_say_why():
    over = [f"{rel(p)}:{line} {name}() is {n} lines" for p in CODE for name, line, n in long_functions(p.read_text())]
    assert not over, (f"functions over {FUNCTION_LIMIT} lines: split them, or say why on the line above the def "
                      "with '# long: <why>':\n" + "\n".join(over))


def test_one_atomic_rename():
    found = [(rel(p), line) for p in CODE for line in renames(p.read_text())]
    assert len(found) == 1 and found[0][0] == ONLY_RENAME, (
        f"os.replace / os.rename belong to checkpoint.atomic_write alone; write through it instead: {found}")


def test_no_absolute_paths_outside_the_repository():
    offenders = []
    for path in FILES:
        data = path.read_bytes()
        if b"\0" in data[:8192] or path.name == ".gitignore":  # binary; .gitignore's patterns start at the root
            continue
        offenders += [f"{rel(path)}:{n}: {found}" for n, found in absolute_paths(data.decode("utf-8", "replace"))]
    assert not offenders, ("absolute paths outside the repository (make them relative to it, or add a system "
                           "location every machine has to ALLOWED_ABSOLUTE):\n" + "\n".join(offenders))


# -- the checks themselves, on small inputs -----------------------------------------------------------------
def test_the_checks_find_what_they_look_for():
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LIMIT))  # def line + 60 = 61 lines
    assert long_functions(f"def f():\n{body}\n") == [("f", 1, FUNCTION_LIMIT + 1)]
    assert long_functions(f"# long: one loop, read in one place\n@torch.no_grad()\ndef f():\n{body}\n") == []
    assert long_functions(f"def f():  # long: a table of cases\n{body}\n") == []
    assert long_functions(f"# Longer than 60 lines on purpose\ndef f():\n{body}\n") == [("f", 2, FUNCTION_LIMIT + 1)]
    assert renames("import os\nos.replace(a, b)\nx.replace('a', 'b')\nfrom os import rename\n") == [2, 4]
    elsewhere = "/" + "home/me/notes.md"  # built here, so that this file does not name it itself
    text = f"see /usr/share/datasets/x, data/raw/, https://e.org/a/b, 1/3, runs/<run>/ckpt.pt\n`{elsewhere}`"
    assert absolute_paths(text) == [(2, elsewhere)]
