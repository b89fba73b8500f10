"""The layers of docs/architecture.md hold in the code: every import inside `ingest/` points down
the layer order the doc draws (or stays inside its own layer), and no modules import each other
in a cycle. `pytest -k layers` runs these; they read the source, they start nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ingest"
ARCHITECTURE = REPO / "docs" / "architecture.md"

# A layer line of the doc's diagram: its indent is its depth ("cli/", "  ops/", "errors.py (").
_LAYER_LINE = re.compile(r"^( *)([a-z_]+)(/|\.py)(?: |$)")


def layer_order() -> dict[str, int]:
    """Each layer's depth in the diagram at the top of docs/architecture.md (0 = top)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    diagram = text.split("```", 2)[1]
    depths: dict[str, int] = {}
    for line in diagram.splitlines():
        match = _LAYER_LINE.match(line)
        if match:
            depths.setdefault(match.group(2), len(match.group(1)))
    return depths


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ingest modules `name` imports, at any depth of its code (function-level too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    found.add(full)
                elif base in known:
                    found.add(base)
    found.discard(name)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ingest"


def test_layers_every_import_points_down_the_architecture_docs_order() -> None:
    depths = layer_order()
    known = modules()
    assert {"cli", "ops", "run", "sources", "phoenix", "convert", "errors", "http"} <= set(depths)
    upward = []
    for name, path in known.items():
        source = layer_of(name)
        if source in {"ingest", "__main__"}:
            continue  # the package root and `python -m ingest` start the CLI
        assert source in depths, f"{name}: layer '{source}' is not in docs/architecture.md"
        for target in imports_of(name, path, known):
            destination = layer_of(target)
            if destination == source or destination == "ingest":
                continue
            if depths[destination] <= depths[source]:
                upward.append(f"{name} imports {target} ({source} -> {destination})")
    assert not upward, "imports that do not point down the layers:\n" + "\n".join(upward)


def test_layers_no_modules_import_each_other_in_a_cycle() -> None:
    known = modules()
    # A package __init__ that re-exports its modules is not an edge of a cycle.
    graph = {
        name: {t for t in imports_of(name, path, known) if known[t].name != "__init__.py"}
        for name, path in known.items()
    }
    cycles, visiting, done = [], [], set()

    def visit(node: str) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append(" -> ".join([*visiting[visiting.index(node) :], node]))
            return
        visiting.append(node)
        for target in sorted(graph[node]):
            visit(target)
        visiting.pop()
        done.add(node)

    for name in sorted(graph):
        visit(name)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_layers_check_itself_sees_an_upward_import() -> None:
    """The checks above are not vacuous: the doc's order ranks convert below run, and the
    import reader finds relative imports such as run.pipeline's."""
    depths = layer_order()
    assert depths["run"] < depths["convert"] < depths["errors"]
    known = modules()
    pipeline = imports_of("ingest.run.pipeline", known["ingest.run.pipeline"], known)
    assert any(layer_of(target) == "convert" for target in pipeline)
