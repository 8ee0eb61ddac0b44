"""The documents hold together: links resolve, section references name real sections, and the README stays short.

1. Every relative Markdown link, in a *.md file or a notebook's Markdown cell, points at a file or folder
   that exists; an anchor into a Markdown file (``choices.md#probe``) names one of its headings, as
   GitHub derives anchors from headings.
2. Every section reference ``<file>.md §N``, ``§N.M`` or ``§Na`` (also ``Sec. N``, and chains such as
   ``§3.8, §6``) in the notebooks, in the Python files of ldae_lite/, tests/, scripts/ and benchmarks/,
   and in the Markdown files names a file of the repository with a heading numbered that way:
   ``docs/paper.md §3.7`` needs ``### 3.7 ...`` in docs/paper.md.
3. No file names notes that are not part of the repository (the four names in NOT_IN_REPOSITORY).
4. README.md is at most 12 KiB: a front door, with the rest one link away.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 12 * 1024  # bytes
CODE_FOLDERS = ("ldae_lite", "tests", "scripts", "benchmarks")
# Working notes kept outside the repository; written as parts so that this file does not name them itself.
NOT_IN_REPOSITORY = tuple(name + ".md" for name in ("PAPER", "MEASURED", "STYLE", "DESIGN"))
_SKIP_DIRS = {".git", ".venv", "runs", "build", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HEADING_NUMBER = re.compile(r"^§?\s*(\d+(?:\.\d+)*[a-z]?)\.?(?:\s|$)")
_NUMBER = r"(\d+(?:\.\d+)*[a-z]?)"
_SECTION_REF = re.compile(r"([\w./-]+\.md)\s*(?:§|Sec\.)\s*" + _NUMBER)
_SECTION_CHAIN = re.compile(r"\s*(?:,|;|/|and|or)\s*(?:§|Sec\.)\s*" + _NUMBER)


# -- the files -----------------------------------------------------------------------------------------
def repository_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files (what a commit of this tree would hold)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout.decode()
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk, skipping what git ignores
        files = [p for p in ROOT.rglob("*") if not _SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
                 and not any(part.endswith(".egg-info") for part in p.parts)
                 and not (p.relative_to(ROOT).parts[0] == "data" and p.name != "README.md")]
    return sorted(p for p in files if p.is_file())


FILES = repository_files()
MARKDOWN = [p for p in FILES if p.suffix == ".md"]
NOTEBOOKS = [p for p in FILES if p.suffix == ".ipynb"]
PYTHON = [p for p in FILES if p.suffix == ".py" and p.relative_to(ROOT).parts[0] in CODE_FOLDERS]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def notebook_cells(path: Path, kind: str | None = None) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if kind is None or c["cell_type"] == kind]


def without_code(markdown: str) -> str:
    """The Markdown with fenced blocks and code spans blanked (links inside code are not links)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else _CODE_SPAN.sub("", line))
    return "\n".join(lines)


# -- headings and anchors --------------------------------------------------------------------------------
def headings(markdown: str) -> list[str]:
    """The text of every ATX heading outside fenced code."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            found.append(m.group(2))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the visible text, lower-cased, punctuation dropped, spaces to dashes."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in headings(markdown):
        s = slug(h)
        out.add(s if s not in seen else f"{s}-{seen[s]}")  # repeats get -1, -2, ... as on GitHub
        seen[s] = seen.get(s, 0) + 1
    return out


def section_numbers(markdown: str) -> set[str]:
    """The numbers headings carry: '## 3. Formulas' -> '3', '### 3.7 Single noise level' -> '3.7', '1a'."""
    return {m.group(1) for h in headings(markdown) if (m := _HEADING_NUMBER.match(h))}


# -- the checks as functions (each returns a list of offences) --------------------------------------------
def link_targets(markdown: str) -> list[str]:
    text = without_code(markdown)
    return [unquote(t) for t in _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)]


def broken_links(source: Path, markdown: str, check_same_file_anchors: bool) -> list[str]:
    broken = []
    for target in link_targets(markdown):
        if _SCHEME.match(target):
            continue  # http(s), mailto, attachment: not a file of the repository
        path_part, _, anchor = target.partition("#")
        path = (source.parent / path_part).resolve() if path_part else source
        if not path_part and not check_same_file_anchors:
            continue
        if not path.exists():
            broken.append(f"{rel(source)}: link to {target!r}: no such file")
        elif anchor and path.suffix == ".md" and path.is_file():
            if anchor.lower() not in anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{rel(source)}: link to {target!r}: {path.name} has no heading with anchor #{anchor}")
    return broken


def section_references(text: str) -> list[tuple[str, str]]:
    """(file, number) for every '<file>.md §N' in text, following chains like '§3.8, §6'."""
    refs = []
    for m in _SECTION_REF.finditer(text):
        refs.append((m.group(1), m.group(2)))
        end = m.end()
        while chained := _SECTION_CHAIN.match(text, end):
            refs.append((m.group(1), chained.group(1)))
            end = chained.end()
    return refs


def resolve(source: Path, name: str) -> Path | None:
    """A referenced file: as written from the repository root, else from the citing file's folder."""
    for base in (ROOT, source.parent):
        path = (base / name).resolve()
        if path.is_file() and path.is_relative_to(ROOT):
            return path
    return None


def unresolved_sections(source: Path, text: str) -> list[str]:
    bad = []
    for name, number in section_references(text):
        path = resolve(source, name)
        if path is None:
            bad.append(f"{rel(source)}: '{name} §{number}': {name} is not a file of the repository")
        elif number not in section_numbers(path.read_text(encoding="utf-8")):
            bad.append(f"{rel(source)}: '{name} §{number}': {rel(path)} has no heading numbered {number}")
    return bad


# -- the tests ------------------------------------------------------------------------------------------
def test_there_are_documents_to_check():
    assert ROOT / "README.md" in MARKDOWN and NOTEBOOKS and PYTHON


def test_relative_links_resolve():
    broken = [b for p in MARKDOWN for b in broken_links(p, p.read_text(encoding="utf-8"), True)]
    broken += [b for p in NOTEBOOKS for cell in notebook_cells(p, "markdown") for b in broken_links(p, cell, False)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_section_references_resolve():
    bad = [b for p in MARKDOWN + PYTHON for b in unresolved_sections(p, p.read_text(encoding="utf-8"))]
    bad += [b for p in NOTEBOOKS for cell in notebook_cells(p) for b in unresolved_sections(p, cell)]
    assert not bad, "section references without a matching numbered heading:\n" + "\n".join(bad)


def test_no_file_names_notes_outside_the_repository():
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in NOT_IN_REPOSITORY) + r")\b")
    offenders = []
    for path in FILES:
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images)
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{rel(path)}:{number}: {line.strip()[:100]}")
    assert not offenders, (f"these lines name {', '.join(NOT_IN_REPOSITORY)}, which are not in the repository; "
                           "cite docs/paper.md §N or a results/ file instead:\n" + "\n".join(offenders))


def test_readme_is_a_front_door():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, (f"README.md is {size} bytes, over {README_LIMIT} (12 KiB): move detail to "
                                  "results/README.md, docs/ or CHANGELOG.md and link to it")


# -- the parsers themselves, on small inputs ---------------------------------------------------------------
def test_section_numbers_and_references_parse():
    doc = "# Title\n## 3. Formulas\n### 3.7 Single noise level\n### 1a. Stage 1\n```\n## 9. in code\n```\n"
    assert section_numbers(doc) == {"3", "3.7", "1a"}
    other = "notes" + ".md"  # a file that does not exist, kept out of this file's own references
    text = f"see docs/paper.md §3.8, §6 and {other} Sec. 2; not §4 alone, nor paper.md 3.7."
    assert section_references(text) == [("docs/paper.md", "3.8"), ("docs/paper.md", "6"), ("notes.md", "2")]


def test_links_and_anchors_parse():
    doc = "[a](x.md#b-c) ![img](pics/p.png) `[not](code.md)` [web](https://e.org)\n[ref]: docs/y.md\n"
    assert link_targets(doc) == ["x.md#b-c", "pics/p.png", "https://e.org", "docs/y.md"]
    assert slug("8.2 t sampling and the schedules' endpoints") == "82-t-sampling-and-the-schedules-endpoints"
    assert anchors("## A\n## A\n") == {"a", "a-1"}


@pytest.mark.parametrize("name", ["docs/paper.md", "docs/choices.md", "results/README.md", "CHANGELOG.md"])
def test_the_documents_exist(name):
    assert (ROOT / name).is_file(), f"{name} is missing"
