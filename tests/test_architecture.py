"""What ARCHITECTURE.md says of the source folders, checked on their code: imports flow one way through
the stages, no two modules import each other, module-level imports form no cycle, and no constant is
declared twice with the same value."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "modality_conflict"
#: The source folders in the order of the stages; a module may import its own stage and earlier ones.
STAGES = ("dataset_builder", "metrics", "models", "mc_tasks", "analysis", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


SOURCES = {
    _module_name(path): path
    for stage in STAGES
    for path in sorted((REPO / stage).rglob("*.py"))
    if "__pycache__" not in path.parts
}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The project modules a file imports (all of them, or only those imported when it is loaded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in SOURCES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
    return {name for name in found if name in SOURCES}


def _stage(module: str) -> int:
    return STAGES.index(module.split(".")[1])


def test_every_source_folder_is_a_stage() -> None:
    folders = {p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(STAGES), "a source folder ARCHITECTURE.md does not place in the flow"


def test_no_module_imports_a_later_stage() -> None:
    against_the_flow = [
        f"{module} imports {imported}"
        for module, path in SOURCES.items()
        for imported in sorted(_imports(path, top_level_only=False))
        if _stage(imported) > _stage(module)
    ]
    assert not against_the_flow, "imports against the flow of stages:\n" + "\n".join(against_the_flow)


def test_module_level_imports_form_no_cycle() -> None:
    graph = {module: _imports(path, top_level_only=True) - {module} for module, path in SOURCES.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported] if imported in path else [module, imported]
            if imported not in state and (cycle := visit(imported, [*path, imported])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            pytest.fail("module-level import cycle: " + " -> ".join(cycle))


def test_no_two_modules_import_each_other_even_inside_functions() -> None:
    graph = {module: _imports(path, top_level_only=False) - {module} for module, path in SOURCES.items()}
    mutual = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph[b]})
    assert not mutual, "modules that import each other: " + "; ".join(" <-> ".join(pair) for pair in mutual)


def test_no_constant_is_declared_twice_with_the_same_value() -> None:
    declared: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, path in SOURCES.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            if not isinstance(target, ast.Name) or not target.id.isupper() or target.id.startswith("_"):
                continue
            try:
                value = ast.literal_eval(node.value)  # type: ignore[arg-type]
            except ValueError:
                continue  # computed: derived from another declaration
            declared[(target.id, repr(value))].append(module)
    twice = [f"{name} in {', '.join(modules)}" for (name, _), modules in declared.items() if len(modules) > 1]
    assert not twice, "constants declared more than once with the same value:\n" + "\n".join(sorted(twice))


def _tree(module: str) -> ast.AST:
    return ast.parse(SOURCES[module].read_text(encoding="utf-8"))


def _calls(module: str) -> set[str]:
    """The names a module calls as written: ``f(...)`` gives ``f``, ``pq.read_table(...)`` ``read_table``."""
    calls = (node.func for node in ast.walk(_tree(module)) if isinstance(node, ast.Call))
    return {
        f.id if isinstance(f, ast.Name) else f.attr for f in calls if isinstance(f, (ast.Name, ast.Attribute))
    }


def _file_names(module: str) -> set[str]:
    """String constants that can be file names or patterns (prose, with its spaces, is left out)."""
    return {
        node.value
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value
        and " " not in node.value
    }


#: Each artifact, how reading it shows in code, and the one module (or pair) that may do it.
ARTIFACT_READERS = {
    # DatasetFolder parses the shards' verified bytes; validate streams the same bytes batch by batch.
    # Nothing calls datasets.load_dataset, which would follow the card and reuse an unchecked Arrow cache.
    "dataset shards": (
        lambda module: bool(
            _calls(module) & {"read_table", "ParquetFile", "read_schema", "read_metadata", "load_dataset"}
        ),
        {"modality_conflict.dataset_builder.folder", "modality_conflict.dataset_builder.validate"},
    ),
    "the dataset pins": (
        lambda module: any("pins.json" in name for name in _file_names(module)),
        {"modality_conflict.dataset_builder.canonical"},
    ),
    # lmms-eval's results files and sample logs: only the results view knows their names (the report-file
    # hook also names the results file its report sits beside, and reads nothing).
    "lmms-eval outputs": (
        lambda module: any("_results.json" in n or "_samples_" in n for n in _file_names(module)),
        {"modality_conflict.analysis.results", "modality_conflict.mc_tasks.report_file"},
    ),
}


@pytest.mark.parametrize("artifact", sorted(ARTIFACT_READERS))
def test_each_artifact_has_one_reader(artifact: str) -> None:
    reads, allowed = ARTIFACT_READERS[artifact]
    readers = {module for module in SOURCES if reads(module)}
    assert readers == allowed, (
        f"{artifact} read by {sorted(readers)}; ARCHITECTURE.md names {sorted(allowed)}"
    )
