"""Edge checks for client text: JSON that parses without blowing the stack, and strings PostgreSQL can store.

PostgreSQL refuses a NUL character in text and UTF-8 cannot encode a lone surrogate (both arrive through JSON
escapes such as ``"\\u0000"`` and ``"\\ud800"``). Either would fail deep in the database as a server error, so
every entry point (socket frames, widget and console JSON endpoints, the REST API's parsers, form posts)
refuses them up front as invalid input, naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from contactcenter.errors import ApplicationError

# A NUL, or a UTF-16 surrogate code point on its own (Python keeps unpaired `\udXXX` escapes as such).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BadJson(ValueError):
    """The text is not JSON this server will read (syntax, nesting too deep for the parser, bad bytes)."""


class UnstorableText(ApplicationError):
    """A string holds a character that cannot be stored; `fields` names where."""

    def __init__(self, where: str):
        super().__init__(
            "invalid_text",
            "Text may not contain NUL characters or unpaired UTF-16 surrogates.",
            {where or "body": ["Contains a character that cannot be stored."]},
        )


def text_is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def unstorable_path(value: Any) -> str | None:
    """The dotted path of the first string (key or value) that cannot be stored, or None when all can.

    Walks iteratively: a document that parsed may still be nested far deeper than Python's recursion limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not text_is_storable(item):
                return path
        elif isinstance(item, Mapping):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not text_is_storable(key):
                    return path or "body"
                stack.append((child_path, child))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{path}[{index}]" if path else f"[{index}]", child) for index, child in enumerate(item))
    return None


def ensure_storable(value: Any) -> None:
    """Raises UnstorableText naming the first string that PostgreSQL would refuse."""
    path = unstorable_path(value)
    if path is not None:
        raise UnstorableText(_safe_path(path))


def _safe_path(path: str) -> str:
    # The path may itself hold the bad character (a dict key): never echo it back.
    return _UNSTORABLE.sub("?", path)


def parse_json(raw: str | bytes) -> Any:
    """json.loads that turns every failure into BadJson, including RecursionError on deeply nested input."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise BadJson("The JSON is nested too deeply.") from exc
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadJson("The body is not valid JSON.") from exc
