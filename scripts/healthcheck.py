#!/usr/bin/env python3
"""Container health probes for docker-compose.yml (the slim image has no curl): exit 0 when healthy.

healthcheck.py http URL                 GET URL answers 200
healthcheck.py fresh PATH_PREFIX SECONDS  a file whose path starts with PATH_PREFIX changed in the last SECONDS
                                          (celery beat rewrites its schedule file at least every 3 minutes)
"""

from __future__ import annotations

import glob
import os
import sys
import time
import urllib.error
import urllib.request


def check_http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (URL comes from the compose file)
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)


def check_fresh(prefix: str, seconds: float) -> str | None:
    # The shelve behind beat's schedule is `prefix`, `prefix.db` or `prefix.dat`, depending on the dbm module.
    paths = glob.glob(glob.escape(prefix) + "*")
    if not paths:
        return f"no file at {prefix}"
    age = time.time() - max(os.path.getmtime(path) for path in paths)
    return None if age <= seconds else f"{prefix} last changed {age:.0f} s ago"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "http":
        problem = check_http(argv[1])
    elif len(argv) == 3 and argv[0] == "fresh":
        problem = check_fresh(argv[1], float(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
