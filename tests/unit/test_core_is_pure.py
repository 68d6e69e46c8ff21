"""core/ is pure: no I/O, settings, clock or randomness, so every decision is testable without a machine.

Checked on the source: what core imports, which calls it makes, and that its functions stay short enough
to read (60 lines at the most, the issue's rule for the plan).
"""

import ast
from pathlib import Path

import hwb_client.core

CORE = Path(hwb_client.core.__file__).parent

FORBIDDEN = {
    "os",
    "time",
    "sqlite3",
    "pyodbc",
    "requests",
    "socket",
    "subprocess",
    "pathlib",
    "structlog",
    "shutil",
    "urllib3",
    "random",
    "secrets",
    "uuid",
    "threading",
    "pydantic",
    "pydantic_settings",
    "hwb_client.settings",
    "hwb_client.adapters",
    "hwb_client.platform",
    "hwb_client.run",
    "hwb_client.cli",
}
#: Calls that read the clock: the day and the time are parameters in core.
CLOCK_CALLS = {"now", "today", "utcnow", "time", "monotonic", "perf_counter"}
MAX_FUNCTION_LINES = 60


def _modules() -> list[tuple[str, ast.Module]]:
    return [(path.name, ast.parse(path.read_text())) for path in sorted(CORE.glob("*.py"))]


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module]
    return []


def test_core_modules_import_no_io_settings_clock_or_randomness() -> None:
    offenders = [
        f"{name}: {imported}"
        for name, tree in _modules()
        for node in ast.walk(tree)
        for imported in _imported(node)
        if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert offenders == []


def test_core_never_reads_the_clock() -> None:
    offenders = [
        f"{name}:{node.lineno} .{node.func.attr}()"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]
    assert offenders == []


def test_no_function_in_core_is_longer_than_60_lines() -> None:
    long = [
        f"{name}: {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_purity_check_catches_a_planted_clock_call_and_import(tmp_path) -> None:
    """The checks above are not vacuous: the same walk finds a planted offender."""
    tree = ast.parse("import random\nimport datetime as dt\ndef f():\n    return dt.date.today()\n")
    imports = [i for node in ast.walk(tree) for i in _imported(node) if i in FORBIDDEN]
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") in CLOCK_CALLS
    ]
    assert imports == ["random"] and len(calls) == 1
