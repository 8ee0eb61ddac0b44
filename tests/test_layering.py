"""The package's layers: a module imports only from the layers below its own, so each layer can be read,
tested and changed knowing only what lies beneath it.

Every module of ``ldae_lite`` must be placed in exactly one layer of LAYERS: a new module is placed there
when it is added; a subpackage (``widgets``, ``tokenizers``, ``exercises``) is placed as a whole, and its
modules may import each other. Within a layer, modules import each other only
where the layer says so (``peers``), and the import graph as a whole has no cycle. The imports are read
from the source (ast), lazy imports inside functions included, without importing anything.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ldae_lite"

# (name, modules, whether modules of the layer may import each other), lowest layer first.
LAYERS = (
    ("foundations", {"models", "noise", "patches", "data", "device", "budgets", "paper", "checkpoint",
                     "conv_vae", "tables", "stats", "validate", "code_version", "batching", "progress",
                     "distributed", "timing", "lifeline"}, True),
    ("the training loop (any module, any loss)", {"train"}, False),
    ("tokenizers", {"tokenizers", "supervised"}, False),
    ("objectives", {"objectives"}, False),
    ("recipes (each field takes its allowed values from a concept below)", {"recipes"}, False),
    ("probing, sampling", {"probe", "sampling"}, False),
    ("experiment", {"cache", "builders", "experiment", "own_images"}, True),
    ("the trajectory runner", {"trajectory"}, False),
    ("teaching", {"widgets", "plots", "analysis", "report", "search", "figures", "compare", "levers", "live",
                  "outputs", "inline", "exercises"}, True),
    ("command line", {"__main__"}, False),
)

# Imports the target layering forbids but the code still has, each with the reason it is tolerated.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    """{dotted name relative to ldae_lite: path} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in its source."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.removeprefix("ldae_lite.") for a in node.names if a.name.startswith("ldae_lite.")}
        elif isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level:  # relative: `.` is the importing module's package, `..` its parent
                target = package[:len(package) - node.level + 1] + module
            elif module[:1] == ["ldae_lite"]:
                target = module[1:]
            else:
                continue
            for alias in node.names:  # `from . import x` imports the module x; `from .x import y`, the module x
                candidate = ".".join(target + [alias.name])
                found.add(candidate if candidate in known else ".".join(target))
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def layer_of() -> dict[str, int]:
    """{module: index of its layer}; a module of a subpackage takes the layer its package is placed in."""
    placed = {m: i for i, (_, members, _) in enumerate(LAYERS) for m in members}
    out = {}
    for name in modules():
        parts = name.split(".")
        owners = [".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in placed]
        if owners:
            out[name] = placed[owners[0]]
    return out


def same_package(a: str, b: str) -> bool:
    return a.split(".")[0] == b.split(".")[0]


def test_every_module_has_one_layer():
    placed = [m for _, members, _ in LAYERS for m in members]
    assert len(placed) == len(set(placed)), "a module is placed in two layers"
    unplaced = sorted(set(modules()) - set(layer_of()))
    assert not unplaced, f"place these modules in a layer of LAYERS: {unplaced}"
    gone = sorted(set(placed) - set(modules()))
    assert not gone, f"LAYERS names modules that do not exist (any more): {gone}"


def test_imports_only_go_down():
    layer, bad = layer_of(), set()
    for name, targets in graph().items():
        for target in targets:
            upward = layer[target] > layer[name]
            sideways = layer[target] == layer[name] and not LAYERS[layer[name]][2] and not same_package(name, target)
            if upward or sideways:
                bad.add((name, target))
    described = [f"{a} ({LAYERS[layer_of()[a]][0]}) imports {b} ({LAYERS[layer_of()[b]][0]})"
                 for a, b in sorted(bad - KNOWN_EXCEPTIONS)]
    assert not described, "imports against the layering:\n" + "\n".join(described)
    stale = sorted(KNOWN_EXCEPTIONS - bad)
    assert not stale, f"{stale} no longer happen: remove them from KNOWN_EXCEPTIONS"


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_reader_sees_relative_and_absolute_imports():
    edges = graph()
    assert {"cache", "builders", "train"} <= edges["experiment"]  # `from .cache import ...`, `from .train ...`
    assert "noise" in edges["exercises.dae"] and "exercises._check" in edges["exercises.dae"]  # `..noise`, `._check`
    assert {"report", "trajectory", "data"} <= edges["__main__"]  # imports inside functions count
