#!/usr/bin/env python3
"""Runs a command with the variables of ./.env added to the environment (variables already set win).

    with_dotenv.py COMMAND [ARGS...]      exec COMMAND with .env loaded
    with_dotenv.py --get NAME DEFAULT     print NAME from the environment, else .env, else DEFAULT

.env holds `NAME=value` lines (optionally `export NAME=value`, values optionally quoted, `#` comments), the
same format docker compose reads, so one file serves `make run` and `docker compose`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOTENV = Path(".env")


def read_dotenv(path: Path = DOTENV) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        name = name.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def main(argv: list[str]) -> int:
    if argv[:1] == ["--get"] and len(argv) == 3:
        print(os.environ.get(argv[1]) or read_dotenv().get(argv[1]) or argv[2])
        return 0
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    # The shell's (and make's command line's) variables override .env, as with docker compose.
    env = {**read_dotenv(), **os.environ}
    os.execvpe(argv[0], argv, env)  # noqa: S606 (a developer tool: runs what make asks for)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
