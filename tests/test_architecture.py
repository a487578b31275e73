"""The house's layout, checked (docs/architecture.md): what may import what.

- Domain modules (models, services, selectors, events) import only the apps below them:
  `channels_switch → queueing → chat → agents → contactcenter`, and their ORM lookups do not follow a relation
  that a model of a higher app added to theirs.
- The core (`contactcenter/` outside `wiring/`) imports no app; the wiring is imported by the project's entry
  points only.
- No app imports another app's interface; the templates of one interface do not include another's.
- The lower half of a wrapped operation is called only by its wrapper.
- Services and selectors name the tenant in every query on a tenant's rows (or go by a row already read),
  but for a short list of reads across tenants: the sweeps, API-key and signed-URL lookups.
"""

from __future__ import annotations

import ast
import re
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
    # → queueing.services.conversation_request_on_channel
    "conversation_open_on_channel": {"queueing/services/routing.py"},
    "conversation_close": {"queueing/services/routing.py"},  # → queueing.services.conversation_end
    "conversation_abandon": {"queueing/services/deadlines.py"},  # → queueing.services.queue_abandon
    # → channels_switch.services.conversation_switch (eligibility, the switch record, the introduction)
    "conversation_channel_move": {"channels_switch/services/switch.py"},
    # → channels_switch.services.auth_code_redeem (the way back to the web is only an auth code's)
    "conversation_channel_return": {"channels_switch/services/auth_codes.py"},
    "introduction_post": {"channels_switch/services/switch.py"},
    "membership_create": {"agents/services/team.py"},  # → agents.services.agent_create / agent_invite
    "membership_invite": {"agents/services/team.py"},  # → agents.services.agent_invite
    "tenant_create": {"agents/services/team.py"},  # → agents.services.tenant_setup
    # Presence: queueing's wrappers also tell colleagues and withdraw or make offers.
    "presence_set": {"queueing/services/presence.py"},  # → queueing.services.agent_presence_change
    "presence_sweep": {"queueing/services/presence.py"},  # → queueing.services.agents_offline_sweep
    "agent_socket_opened": {"queueing/services/presence.py"},  # → queueing.services.agent_console_open
    "agent_socket_closed": {"queueing/services/presence.py"},  # → queueing.services.agent_console_close
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


# --- contactcenter: the core and the wiring -----------------------------------------------------------------

CORE = ROOT / "contactcenter"
# The project's entry points: Django and Celery look for them here. They reach the apps through wiring/ only.
ENTRY_POINTS = {"settings.py", "urls.py", "asgi.py", "celery.py"}
APPS_ABOVE_CORE = set(ORDER) - {"contactcenter"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports by absolute name (`from a.b import c` gives `a.b` and `a.b.c`)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def core_files() -> list[Path]:
    skipped = {"wiring", "management", "migrations"}
    return [
        path
        for path in sorted(CORE.rglob("*.py"))
        if not skipped & set(path.relative_to(CORE).parts) and path.name not in ENTRY_POINTS
    ]


def test_the_core_imports_no_app():
    assert core_files(), "the core has files"
    for path in core_files():
        upward = imported_apps(path) & APPS_ABOVE_CORE
        assert not upward, f"{path.relative_to(ROOT)} is core and imports {sorted(upward)}: move it to wiring/"


def test_the_entry_points_reach_the_apps_through_the_wiring_only():
    for name in sorted(ENTRY_POINTS):
        upward = imported_apps(CORE / name) & APPS_ABOVE_CORE
        assert not upward, f"contactcenter/{name} imports {sorted(upward)}: let contactcenter/wiring/ do it"


def test_nothing_but_the_entry_points_imports_the_wiring():
    wiring = ("contactcenter.wiring", "contactcenter.urls", "contactcenter.asgi", "contactcenter.celery")
    for path in code_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("scripts", "bench") or relative.parts[:2] in (
            ("contactcenter", "wiring"),
            ("contactcenter", "management"),
        ):
            continue
        if path.parent == CORE and path.name in ENTRY_POINTS:
            continue
        reached = {module for module in imported_modules(path) if module.startswith(wiring)}
        assert not reached, f"{relative} imports {sorted(reached)}, the wiring, which nothing below imports back"


# --- interfaces ------------------------------------------------------------------------------------------------

# What each app's interfaces are: sockets, HTTP endpoints, pages, URL tables, forms and serializers of its pages.
INTERFACE_MODULES = {
    "admin",
    "api",
    "console_api",
    "console_state",
    "console_urls",
    "consumers",
    "forms",
    "routing",
    "serializers",
    "settings_views",
    "supervision_consumer",
    "supervision_state",
    "supervision_urls",
    "supervision_views",
    "urls",
    "views",
    "widget_api",
    "widget_urls",
}
# Known reaches being taken apart: each entry must still exist (the list only shrinks), no new one may appear.
INTERFACE_REACHES_BEING_REMOVED: set[tuple[str, str]] = set()


def interface_reaches() -> set[tuple[str, str]]:
    reaches = set()
    for app in APPS_ABOVE_CORE:
        for path in sorted((ROOT / app).glob("*.py")):
            for module in imported_modules(path):
                parts = module.split(".")
                if len(parts) >= 2 and parts[0] in APPS_ABOVE_CORE - {app} and parts[1] in INTERFACE_MODULES:
                    reaches.add((path.relative_to(ROOT).as_posix(), ".".join(parts[:2])))
    return reaches


def test_no_app_imports_another_apps_interface():
    reaches = interface_reaches()
    new = reaches - INTERFACE_REACHES_BEING_REMOVED
    assert not new, f"an interface imports another app's interface: {sorted(new)}; share it through a domain module"
    gone = INTERFACE_REACHES_BEING_REMOVED - reaches
    assert not gone, f"{sorted(gone)} no longer happen: take them off INTERFACE_REACHES_BEING_REMOVED"


def test_the_templates_of_one_interface_do_not_include_another_ones():
    pattern = re.compile(r"{%\s*(?:include|extends)\s+[\"']([\w/.-]+)[\"']")
    for owner in ("agents", "chat"):
        for path in sorted((ROOT / "templates" / owner).rglob("*.html")):
            for name in pattern.findall(path.read_text()):
                other = name.split("/")[0]
                assert other not in {"agents", "chat"} - {owner}, f"{path.relative_to(ROOT)} uses {name}"


# --- ORM lookups ---------------------------------------------------------------------------------------------

DOMAIN_MODULES = ["models.py", "services", "selectors.py", "events.py", "signals.py", "tokens.py"]


def reverse_names_from_above() -> dict[str, dict[str, str]]:
    """app → {relation name → the app above it that adds it}: the reverse accessors and query names that a
    model of a higher app puts on this app's models (`Widget.route` from queueing's QueueRoute)."""
    from django.apps import apps

    names: dict[str, dict[str, str]] = {app: {} for app in ORDER}
    for model in apps.get_models():
        owner = model._meta.app_label
        if owner not in ORDER:
            continue
        for field in model._meta.get_fields():
            if not field.is_relation or field.auto_created or field.related_model is None:
                continue
            target = field.related_model._meta.app_label
            if target in ORDER and ORDER.index(target) < ORDER.index(owner):
                remote = field.remote_field
                for name in {remote.get_accessor_name(), field.related_query_name()} - {None}:
                    if not name.endswith("+"):  # related_name="+": no reverse relation at all
                        names[target][name] = owner
    return names


def lookup_strings(path: Path) -> set[str]:
    """String constants that read as ORM lookups: `a__b`, or the arguments of select_related/prefetch_related."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"\w+__\w+", node.value):
            found.add(node.value)
        elif isinstance(node, ast.keyword) and node.arg and "__" in node.arg:
            found.add(node.arg)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("select_related", "prefetch_related", "values", "values_list", "only", "order_by")
        ):
            found |= {arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("app", ORDER)
def test_domain_lookups_do_not_follow_a_relation_an_app_above_added(app):
    reverse = reverse_names_from_above()
    for name in DOMAIN_MODULES:
        for path in module_files(ROOT / app / name):
            for lookup in lookup_strings(path):
                segments = lookup.lstrip("-").split("__")
                # Starting from this app's own models, the first segment that names a reverse relation
                # from above is the reach (later segments belong to other models).
                reached = [segment for segment in segments[:2] if segment in reverse[app]]
                assert not reached, (
                    f"{path.relative_to(ROOT)} looks up {lookup!r}: {reached[0]} is added by "
                    f"{reverse[app][reached[0]]}, above {app}"
                )


@pytest.mark.django_db
def test_the_lookup_check_sees_a_reach_from_below(tmp_path):
    module = tmp_path / "selectors.py"
    module.write_text('q.select_related("widget__route__queue")\nq.filter(queue_route__queue=1)\n')
    assert lookup_strings(module) == {"widget__route__queue", "queue_route__queue"}
    assert {"route", "queue_route", "offers"} <= reverse_names_from_above()["chat"].keys()


# --- tenant scoping: every read of a tenant's rows in services and selectors names the tenant ----------------
#
# A query on a model with a `tenant` field is scoped when its chain names the tenant (`for_tenant(…)`,
# `tenant=`, `tenant_id=`, `tenant__…=`), or when one of its filters goes by a row already in hand (`pk=x.pk`,
# `conversation=conversation` for a relation, `pk__in=[o.pk …]`, `OuterRef(…)` inside a scoped query): that
# row was read scoped, so the query cannot reach another tenant's rows through it. Reads across tenants are the
# sweeps' and the lookups that find the tenant from what the request carries: listed here, each with its reason.
UNSCOPED_ALLOWED = {
    "agents/services/presence.py::presence_sweep": "the sweep: every tenant's stale agents",
    "agents/services/presence.py::agent_sockets_sweep": "the sweep: sockets of dead processes, every tenant",
    "queueing/services/presence.py::agents_offline_sweep": "the sweep's follow-up of presence_sweep's agents",
    "channels_switch/services/relay.py::deliveries_sweep": "the sweep: every tenant's due and stuck deliveries",
    "channels_switch/services/dead_connection.py::dead_connections_sweep": "the sweep: every tenant's lost visitors",
    "channels_switch/selectors.py::connector_for_webhook": "a webhook URL names its connector by a random key",
    "channels_switch/services/relay.py::_claim": "a relay task names its delivery row by id (written by the server)",
    "channels_switch/services/relay.py::_claim_batch": "a relay task drains the due rows of every tenant with its own",
    "channels_switch/services/relay.py::_slot_release": "a drain ending looks for any tenant's row that became due",
    "channels_switch/services/media.py::inbound_media_sweep": "the sweep: every tenant's due and stuck file fetches",
    "channels_switch/services/media.py::_claim": "a fetch task names its media row by id (written by the server)",
    "channels_switch/services/inbox.py::inbound_process": "a task names its kept webhook by id (written by the server)",
    "queueing/services/deadlines.py::offer_expire": "the sweep names an offer by id (read by the sweep itself)",
    "queueing/services/deadlines.py::offers_expire_sweep": "the sweep: every tenant's offers past their time limit",
    "queueing/services/deadlines.py::waiting_offer_sweep": "the sweep: every tenant's waiting chats without an offer",
    "queueing/services/deadlines.py::queue_abandon_sweep": "the sweep: every tenant's queued visitors who are gone",
    "queueing/services/deadlines.py::queue_unserved_sweep": "the sweep: every tenant's lines with no agent at work",
    "channels_switch/services/inbox.py::_next_due": "a drain names its connector by id (the server's own task)",
    "channels_switch/services/inbox.py::inbound_inbox_sweep": "the sweep: every tenant's webhooks whose task was lost",
    "contactcenter/services/apikeys.py::apikey_authenticate": "an API key names its tenant",
    "chat/selectors.py::attachment_get_for_visitor_id": "a signed URL names the attachment and its visitor",
    "channels_switch/services/connectors.py::connector_secrets_reseal": "key rotation: every tenant's sealed secrets",
    "contactcenter/services/webhooks_delivery.py::webhook_deliveries_sweep": "the sweep: every tenant's due webhooks",
    "contactcenter/services/webhooks_delivery.py::webhook_disabled_notices_send": (
        "the sweep: every tenant's disabled-subscription notices left unsent"
    ),
    "contactcenter/services/idempotency.py::idempotency_keys_sweep": "the sweep: every tenant's expired keys",
}
SCOPE_KEYWORDS = ("tenant", "tenant_id")
FILTERING = ("filter", "exclude", "get", "get_or_create", "update_or_create")


def tenant_owned_models() -> dict[str, set[str]]:
    """Model class name → its relation field names, for every model with a `tenant` field."""
    from django.apps import apps

    return {
        model.__name__: {field.name for field in model._meta.get_fields() if field.is_relation}
        for model in apps.get_models()
        if any(field.name == "tenant" for field in model._meta.get_fields())
    }


def _in_hand(keyword: ast.keyword, relations: set[str]) -> bool:
    """A filter by a row already read: its key (`x.pk`, `x.conversation_id`), the row itself for a relation
    (`conversation=conversation`), keys of rows in a comprehension, or the outer query's row (`OuterRef`)."""
    value = keyword.value
    if isinstance(value, ast.ListComp | ast.SetComp):
        value = value.elt
    if isinstance(value, ast.Attribute):  # a key of a row: x.pk, x.conversation_id, actor.user for user=
        return value.attr == "pk" or value.attr.endswith("_id") or value.attr == keyword.arg
    if isinstance(value, ast.Name) and keyword.arg in relations and value.id == keyword.arg:
        return True
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "OuterRef"


def unscoped_queries(path: Path, owned: dict[str, set[str]]) -> list[tuple[str, int, str]]:
    """(enclosing function, line, query) of each query on a tenant-owned model that neither names the tenant nor
    goes by rows in hand only."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and node.attr == "objects"
            and isinstance(node.value, ast.Name)
            and node.value.id in owned
        ):
            continue
        top: ast.AST = node  # the whole chain: Model.objects.a(…).b(…)…
        while isinstance(parent := parents.get(top), ast.Attribute | ast.Call) and (
            getattr(parent, "value", None) is top or getattr(parent, "func", None) is top
        ):
            top = parent
        if isinstance(parents.get(node), ast.Attribute) and parents[node].attr in ("create", "bulk_create"):
            continue  # a new row, not a read (its tenant is a required field)
        chain = [n for n in ast.walk(top) if isinstance(n, ast.Call | ast.Attribute)]
        if any(isinstance(n, ast.Attribute) and n.attr == "for_tenant" for n in chain):
            continue
        filters = [
            k
            for n in chain
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in FILTERING
            for k in n.keywords
            if k.arg and k.arg != "defaults"
        ]
        if any(k.arg in SCOPE_KEYWORDS or k.arg.startswith("tenant__") for k in filters):
            continue
        if any(_in_hand(k, owned[node.value.id]) for k in filters):
            continue
        function = next(
            (p.name for p in _ancestors(top, parents) if isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef)), ""
        )
        found.append((function, top.lineno, ast.unparse(top)[:120]))
    return found


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]):
    while node in parents:
        node = parents[node]
        yield node


@pytest.mark.django_db
@pytest.mark.parametrize("app", ORDER)
def test_services_and_selectors_scope_every_read_of_a_tenants_rows(app):
    owned = tenant_owned_models()
    for name in ("services", "selectors.py"):
        for path in module_files(ROOT / app / name):
            where = path.relative_to(ROOT).as_posix()
            unscoped = [
                f"{where}:{line} in {function}(): {query}"
                for function, line, query in unscoped_queries(path, owned)
                if f"{where}::{function}" not in UNSCOPED_ALLOWED
            ]
            assert not unscoped, "queries that do not name the tenant:\n" + "\n".join(unscoped)


# Interface read models that query several apps' rows for one page themselves are held to the same rule.
READ_MODELS = ["agents/supervision_state.py"]


@pytest.mark.django_db
@pytest.mark.parametrize("where", READ_MODELS)
def test_read_models_scope_every_read_of_a_tenants_rows(where):
    unscoped = [
        f"{where}:{line} in {function}(): {query}"
        for function, line, query in unscoped_queries(ROOT / where, tenant_owned_models())
    ]
    assert not unscoped, "queries that do not name the tenant:\n" + "\n".join(unscoped)


@pytest.mark.django_db
def test_the_scoping_check_sees_an_unscoped_read(tmp_path):
    module = tmp_path / "selectors.py"
    module.write_text(
        "def by_id(conversation_id, tenant, conversation, message):\n"
        "    Conversation.objects.get(pk=conversation_id)\n"  # an id from outside: any tenant's
        "    Message.objects.filter(body='x').first()\n"
        "    Conversation.objects.for_tenant(tenant).get(pk=conversation_id)\n"
        "    Message.objects.filter(tenant_id=tenant.pk, seq=1)\n"
        "    Message.objects.filter(conversation=conversation)\n"
        "    Conversation.objects.get(pk=message.conversation_id)\n"
        "    Offer.objects.filter(agent_id=user_id).update(tenant_id=1)\n"  # naming it in the update is no scope
        "    Offer.objects.filter(status=OfferStatus.PENDING)\n"  # a constant is no row in hand
        "    Offer.objects.filter(pk__in=[offer.pk for offer in offers])\n"
    )
    found = unscoped_queries(module, tenant_owned_models())
    assert sorted((function, line) for function, line, _ in found) == [
        ("by_id", 2),
        ("by_id", 3),
        ("by_id", 8),
        ("by_id", 9),
    ]


@pytest.mark.django_db
def test_every_allowed_unscoped_read_is_still_there():
    """The allowlist stays short: an entry whose function no longer reads across tenants goes."""
    owned = tenant_owned_models()
    flagged = {
        f"{path.relative_to(ROOT).as_posix()}::{function}"
        for app in ORDER
        for name in ("services", "selectors.py")
        for path in module_files(ROOT / app / name)
        for function, _, _ in unscoped_queries(path, owned)
    }
    assert set(UNSCOPED_ALLOWED) <= flagged, sorted(set(UNSCOPED_ALLOWED) - flagged)
