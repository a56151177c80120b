"""The house: layers that import only downwards, no circle, and a map (docs/architecture.md)
that names only modules that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "coder"

# lowest first; a module may import its own layer and the ones below, never above
LAYERS = [
    ("errors and cells", ["coder.errors", "coder.spreadsheet"]),
    ("study file", ["coder.store"]),
    ("sources", ["coder.sources"]),
    ("machine and people", ["coder.machine", "coder.review"]),
    ("analysis", ["coder.analysis"]),
    ("exchange", ["coder.exchange"]),
    ("faces", ["coder.study", "coder.cli", "coder.web", "coder.tui", "coder.demo",
               "coder.__main__"]),
]


def modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def layer_of(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every coder module this one imports, lazily inside functions too."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            # `from pkg import mod` runs pkg/__init__.py too, so both count as imported
            if target in known:
                found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names} & known
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    found.discard(module)
    found.discard("coder")  # the package itself (its __version__)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, f, set(mods)) for m, f in mods.items()}


def test_every_module_has_a_layer():
    unplaced = [m for m in modules() if m != "coder" and layer_of(m) is None]
    assert unplaced == []


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, deps in graph().items():
        mine = layer_of(module)
        for dep in deps:
            if mine is not None and layer_of(dep) is not None and layer_of(dep) > mine:
                upward.append(f"{module} ({LAYERS[mine][0]}) imports {dep} "
                              f"({LAYERS[layer_of(dep)][0]})")
    assert upward == []


def test_no_library_module_imports_the_facade():
    library = [m for m in graph() if layer_of(m) is not None and layer_of(m) < len(LAYERS) - 1]
    assert [m for m in library if "coder.study" in graph()[m]] == []


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        state[v] = 1
        stack.append(v)
        for w in sorted(g[v]):
            if state.get(w) == 1:
                circles.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(g):
        if v not in state:
            visit(v)
    assert circles == []


def test_the_architecture_map_names_only_modules_that_exist():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(coder/[\w/]+\.py)`", text))
    assert named, "docs/architecture.md names no module"
    assert sorted(n for n in named if not (ROOT / n).is_file()) == []
    folders = set(re.findall(r"`(coder/[\w/]+/)`", text))
    assert sorted(f for f in folders if not (ROOT / f).is_dir()) == []


def test_the_architecture_map_places_every_library_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [str(f.relative_to(ROOT)) for m, f in modules().items()
               if f.name != "__init__.py" and layer_of(m) is not None
               and layer_of(m) < len(LAYERS) - 1 and f"`{f.relative_to(ROOT).as_posix()}`" not in text]
    assert missing == []
