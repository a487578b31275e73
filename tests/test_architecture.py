"""The apps' import order: models, services and selectors import only the apps below them.

`channels_switch → queueing → chat → agents → contactcenter`. Interfaces (views, consumers, API views, tasks,
settings views, management commands, the demo) may compose several apps and are not checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["contactcenter", "agents", "chat", "queueing", "channels_switch"]
CORE_MODULES = ["models.py", "services", "selectors.py", "events.py"]


def imported_apps(path: Path) -> set[str]:
    """Every app a module imports, at the top or inside a function."""
    apps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            apps |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            apps.add(node.module.split(".")[0])
    return apps & set(ORDER)


def module_files(path: Path) -> list[Path]:
    """A module's file, or every file of a package of that name (`services/` split by concept)."""
    if path.suffix == ".py":
        return [path] if path.exists() else []
    package = path.with_suffix("")
    if package.is_dir():
        return sorted(package.rglob("*.py"))
    single = package.with_suffix(".py")
    return [single] if single.exists() else []


@pytest.mark.parametrize("app", ORDER)
def test_core_modules_import_only_downward(app):
    above = set(ORDER[ORDER.index(app) + 1 :])
    for name in CORE_MODULES:
        for path in module_files(ROOT / app / name):
            upward = imported_apps(path) & above
            assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}, which stand above {app}"
