"""Optional py-spy sampling of the server during saturation, summarised as the functions the time goes to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path, *, idle: bool) -> subprocess.Popen[bytes] | None:
    """Samples `pid` for `seconds` into a collapsed-stack file; None when py-spy is not installed."""
    binary = py_spy()
    if binary is None:
        return None
    argv = [binary, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200", "-f", "raw", "-o", str(out)]
    # cpu: only samples holding the GIL (where Python time goes); wall: every thread, waiting ones too.
    argv += ["--nonblocking", "--threads"] + (["--idle"] if idle else ["--gil"])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Frames every sample of a thread passes through: they say nothing about where the time goes.
PLUMBING = (
    "threading.py",
    "futures/thread.py",
    "asgiref/sync.py",
    "asgiref/current_thread_executor.py",
    "channels/db.py",
    "contextlib.py",
    "<frozen runpy>",
    "daphne/cli.py",
    "daphne/__main__.py",
    "daphne/server.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "internet/asyncioreactor.py",
)


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" → "function (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def summarise(path: Path, top: int = 12) -> list[str]:
    """Inclusive share of samples per function, per thread: where the server's time goes."""
    if not path.exists():
        return [f"no profile at {path}"]
    per_thread: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    leaf: dict[str, Counter[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        per_thread[thread] += count
        seen = {_short(f) for f in frames[1:]}
        seen = {f for f in seen if not f.rstrip(")").endswith(PLUMBING)}
        bucket = inclusive.setdefault(thread, Counter())
        for frame in seen:
            bucket[frame] += count
        if len(frames) > 1:
            leaf.setdefault(thread, Counter())[_short(frames[-1])] += count
    lines: list[str] = []
    total = sum(per_thread.values()) or 1
    for thread, samples in per_thread.most_common(3):
        lines.append(f"{thread}: {100 * samples / total:.0f}% of samples")
        for frame, count in inclusive[thread].most_common(top):
            lines.append(f"    {100 * count / samples:5.1f}% incl  {frame}")
        for frame, count in leaf.get(thread, Counter()).most_common(6):
            lines.append(f"    {100 * count / samples:5.1f}% self  {frame}")
    return lines
