"""The layers of docs/architecture.md, checked on the source: what each may import, where the
environment is read, and which names cross a package boundary."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LAYERS = ("tasks", "flows", "deployments", "bench", "tests")
MAX_LINES = 400


def modules(*folders: str) -> Iterator[tuple[str, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def imports(tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_the_library_never_imports_the_layers_above_it() -> None:
    upward = [f"{name}: {module}" for name, tree in modules("optimizer") for module, _ in imports(tree)
              if module.split(".")[0] in TOP_LAYERS]
    assert upward == []


@pytest.mark.parametrize(("package", "below"), [
    # Pure: request records in, typed results out.
    ("optimizer/analysis", ("optimizer.analysis", "optimizer.schemas", "optimizer.errors")),
    # The warehouse builds on the domain types and errors, and the analyses' input types; it
    # masks credentials in the text it keeps.
    ("optimizer/warehouse", ("optimizer.schemas", "optimizer.errors", "optimizer.analysis", "optimizer.warehouse",
                             "optimizer.redaction")),
    # Below everything but `optimizer.defaults`, plain constants that import nothing.
    ("optimizer/schemas", ("optimizer.schemas", "optimizer.errors", "optimizer.defaults")),
])
def test_a_lower_layer_imports_only_what_lies_below_it(package: str, below: tuple[str, ...]) -> None:
    above = [f"{name}: {module}" for name, tree in modules(package) for module, _ in imports(tree)
             if module.startswith(("optimizer", "httpx", "prefect", "cloudevents", "fastapi"))
             and not module.startswith(below)]
    assert above == []


def test_the_application_layer_runs_without_prefect() -> None:
    found = [f"{name}: {module}" for name, tree in modules("optimizer/pipeline") for module, _ in imports(tree)
             if module.split(".")[0] == "prefect"]
    assert found == []


def reads_environment(tree: ast.Module) -> list[str]:
    """Settings built from the environment, or the environment read directly."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Settings":
            found.append(f"Settings() at line {node.lineno}")
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
            found.append(f"os.{node.attr} at line {node.lineno}")
    return found


def test_tasks_and_use_cases_never_read_the_environment() -> None:
    """The runtime is built where a run starts and passed down: a flow run takes it once
    (`Runtime.current`), the CLI, the demo and the benchmark build it from their settings."""
    found = {name: reads for name, tree in modules("tasks", "optimizer/pipeline")
             if (reads := reads_environment(tree)) and name != "optimizer/pipeline/runtime.py"}
    assert found == {}


def test_flows_read_the_environment_only_to_pick_their_task_runner() -> None:
    found = {name: reads for name, tree in modules("flows") if (reads := reads_environment(tree))}
    assert set(found) <= {"flows/runners.py"}  # chosen where the flow is defined: the deployment's environment


def test_tasks_are_a_decorator_and_one_call_into_the_application_layer() -> None:
    """Besides that call, a task only logs, publishes artifacts and returns."""
    heavy = []
    for name, tree in modules("tasks"):
        use_cases = {alias for module, names in imports(tree) if module == "optimizer.pipeline" for alias in names}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.decorator_list:
                body = ast.Module(body=node.body, type_ignores=[])
                calls = [ast.unparse(c.func) for c in ast.walk(body) if isinstance(c, ast.Call)
                         and ast.unparse(c.func).split(".")[0] in use_cases]
                if len(calls) != 1 or any(isinstance(n, ast.For | ast.While) for n in ast.walk(body)):
                    heavy.append(f"{name}: {node.name} calls {calls}")
    assert heavy == []


def package_of(module: str) -> str:
    """`optimizer.clients` for `optimizer.clients._http`, `tasks` for `tasks.nightly`, and the
    library itself for its own private modules (`optimizer._serving`)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "optimizer" and parts[1:2] != [] and not parts[1].startswith("_") \
        else parts[0]


def test_only_public_names_cross_a_package() -> None:
    """A leading underscore is private to its package: `optimizer.clients._http` is for the
    clients, `optimizer.warehouse._connection` for the warehouse."""
    crossing = []
    for name, tree in modules("optimizer", *TOP_LAYERS[:-1]):
        importer = package_of(name.removesuffix(".py").replace("/", "."))
        for module, names in imports(tree):
            owner = package_of(module)
            if module.split(".")[0] not in ("optimizer", *TOP_LAYERS) or f"{importer}.".startswith(f"{owner}."):
                continue
            if any(part.startswith("_") for part in module.split(".")) or any(n.startswith("_") for n in names):
                crossing.append(f"{name}: from {module} import {', '.join(names)}")
    assert crossing == []


def test_no_module_grows_past_what_one_reads_at_once() -> None:
    long = {str(path.relative_to(ROOT)): lines for folder in ("optimizer", "tasks", "flows", "deployments")
            for path in (ROOT / folder).rglob("*.py")
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
