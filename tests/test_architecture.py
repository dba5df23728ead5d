"""Architecture rules kept by a test (shared/DESIGN.md §2, shared/style.md §3): walks the ``ast`` of every
module under ``sim/`` and checks what it imports and where it prints."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "sim"


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name ("sim.costs.flops", "simpy", "matplotlib.pyplot")
    line: int
    top_level: bool  # at module level (not inside a function)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SIM.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, path: Path) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    # ``from sim.costs import flops`` imports the submodule sim.costs.flops when it exists
    out = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        rel = Path(*candidate.split(".")).with_suffix(".py")
        pkg = Path(*candidate.split(".")) / "__init__.py"
        if (SIM.parent / rel).is_file() or (SIM.parent / pkg).is_file():
            out.append(candidate)
        else:
            out.append(base)
    return out


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.depth = 0
        self.imports: list[Import] = []
        self.prints: list[int] = []

    def _scoped(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scoped

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(Import(alias.name, node.lineno, self.depth == 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for name in _resolve(node, self.path):
            self.imports.append(Import(name, node.lineno, self.depth == 0))

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "print":
            self.prints.append(node.lineno)
        # importlib.import_module("x") / __import__("x") with a literal name count as imports
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            self.imports.append(Import(str(node.args[0].value), node.lineno, self.depth == 0))
        self.generic_visit(node)


def _scan() -> dict[str, _Visitor]:
    out = {}
    for path in sorted(SIM.rglob("*.py")):
        visitor = _Visitor(path)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        out[module_name(path)] = visitor
    return out


MODULES = _scan()


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(rule) -> list[str]:
    bad = []
    for mod, v in MODULES.items():
        for imp in v.imports:
            if rule(mod, imp):
                bad.append(f"{mod}:{imp.line} imports {imp.module}")
    return bad


def test_the_scan_sees_the_package():
    assert "sim.engine.step" in MODULES and "sim.costs.flops" in MODULES
    step_imports = {i.module for i in MODULES["sim.engine.step"].imports}
    assert "simpy" in step_imports and "sim.costs.flops" in step_imports


def test_simpy_only_in_engine():
    assert _violations(lambda mod, imp: _in(imp.module, "simpy") and not _in(mod, "sim.engine")) == []


def test_matplotlib_only_in_report_and_only_inside_functions():
    def rule(mod, imp):
        if not _in(imp.module, "matplotlib"):
            return False
        return not _in(mod, "sim.report") or imp.top_level

    assert _violations(rule) == []


UPPER = ("sim.engine", "sim.analysis", "sim.report", "sim.cli")


LOWER = ["sim.specs", "sim.costs", "sim.parallelism", "sim.network", "sim.catalog"]


@pytest.mark.parametrize("package", LOWER)
def test_lower_layers_never_import_engine_analysis_report_cli(package):
    def rule(mod, imp):
        return _in(mod, package) and any(_in(imp.module, up) for up in UPPER)

    assert _violations(rule) == []


#: shared/style.md §3, with one deliberate change (README "Architecture"): parallelism sits below costs,
#: because the memory model needs the schedule's in-flight micro-batch count, which is pure.
#: cli -> report -> analysis -> engine -> network -> costs -> parallelism -> specs -> (errors, units); catalog
#: is data every layer may read. report sits above analysis: it draws, tabulates and writes what analysis
#: computes, so analysis never imports report (the two once imported each other).
LAYER = {"sim.errors": 0, "sim.units": 0, "sim.rng": 0, "sim.catalog": 0, "sim.specs": 1, "sim.parallelism": 2,
         "sim.costs": 3, "sim.network": 4, "sim.engine": 5, "sim.analysis": 6, "sim.report": 7,
         "sim.cli": 8}


def _layer(module: str) -> int | None:
    for package, level in LAYER.items():
        if _in(module, package):
            return level
    return None


def test_dependencies_point_downward_only():
    """The full layer order of style.md §3 (DESIGN.md §2: 'a test walks the imports and keeps it so')."""
    def rule(mod, imp):
        if not _in(imp.module, "sim"):
            return False
        mine, theirs = _layer(mod), _layer(imp.module)
        return mine is not None and theirs is not None and theirs > mine

    assert _violations(rule) == []


def test_analysis_and_report_are_no_cycle():
    assert _violations(lambda mod, imp: _in(mod, "sim.analysis") and _in(imp.module, "sim.report")) == []


def test_print_only_in_cli_and_report():
    bad = [f"{mod}:{line}" for mod, v in MODULES.items() for line in v.prints
           if not (_in(mod, "sim.cli") or _in(mod, "sim.report"))]
    assert bad == []


FILE_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "mkdir", "unlink", "rename",
              "touch", "rmdir", "fsync"}
FILE_OWNERS = ("sim.specs", "sim.catalog", "sim.report", "sim.cli")


def _file_calls(path: Path) -> list[int]:
    """Lines that call a filesystem function (``open(...)``, ``path.read_text()``, ``os.fsync`` ...)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        builtin_open = isinstance(func, ast.Name) and func.id == "open"
        if builtin_open or (isinstance(func, ast.Attribute) and func.attr in FILE_CALLS):
            lines.append(node.lineno)
    return lines


def test_only_specs_catalog_report_and_cli_touch_the_filesystem():
    """style.md §3: the other layers take and return data, so they can run anywhere (workers, notebooks)."""
    bad = [f"{module_name(p)}:{line}" for p in sorted(SIM.rglob("*.py"))
           if not any(_in(module_name(p), owner) for owner in FILE_OWNERS) for line in _file_calls(p)]
    assert bad == []
