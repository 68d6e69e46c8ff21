"""core/ is pure: no I/O libraries imported, so every decision is testable without a machine."""

import ast
from pathlib import Path

import hwb_client.core

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
    "hwb_client.adapters",
    "hwb_client.platform",
    "hwb_client.run",
    "shutil",
    "urllib3",
}


def test_core_modules_import_no_io_library() -> None:
    offenders = []
    for path in Path(hwb_client.core.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
