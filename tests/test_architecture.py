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


# The lower half of a pair of operations, and the only modules (besides its own) that may call it: calling it
# alone leaves the work half done (a chat started but never routed or offered, a chat closed with its offers
# still pending, a member without an agent profile). Everyone else calls the wrapper named in the comment.
LOWER_OPERATIONS = {
    "conversation_start": {"queueing/services/routing.py"},  # → queueing.services.conversation_request
    "conversation_close": {"queueing/services/routing.py"},  # → queueing.services.conversation_end
    "membership_create": {"agents/services.py"},  # → agents.services.agent_create / agent_invite
    "membership_invite": {"agents/services.py"},  # → agents.services.agent_invite
    "tenant_create": {"agents/services.py"},  # → agents.services.tenant_setup
}
CODE_DIRS = [*ORDER, "scripts", "bench"]


def code_files() -> list[Path]:
    files = [ROOT / "manage.py"]
    for directory in CODE_DIRS:
        files += [path for path in (ROOT / directory).rglob("*.py") if "migrations" not in path.parts]
    return files


def lower_operation_uses(path: Path) -> set[str]:
    """The lower operations a module calls, imported by name or reached as an attribute."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            used |= {alias.name for alias in node.names} & LOWER_OPERATIONS.keys()
        elif isinstance(node, ast.Attribute) and node.attr in LOWER_OPERATIONS:
            used.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in LOWER_OPERATIONS:
            used.add(node.func.id)
    return used


def defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_only_their_wrappers_call_the_lower_halves_of_an_operation():
    misuse = []
    for path in code_files():
        relative = path.relative_to(ROOT).as_posix()
        for name in lower_operation_uses(path) - defined_functions(path):
            if relative not in LOWER_OPERATIONS[name]:
                misuse.append(f"{relative} calls {name}")
    assert not misuse, "call the wrapper instead: " + "; ".join(sorted(misuse))


def test_the_lower_halves_are_not_re_exported_by_a_services_package():
    for app in ORDER:
        package = ROOT / app / "services" / "__init__.py"
        if package.exists():
            assert not lower_operation_uses(package), f"{package.relative_to(ROOT)} re-exports a lower half"


def test_the_lower_operations_check_sees_a_misuse(tmp_path):
    module = tmp_path / "view.py"
    module.write_text("from chat.services.starting import conversation_start\nimport chat\nchat.x.tenant_create()\n")
    assert lower_operation_uses(module) == {"conversation_start", "tenant_create"}
