"""How sockets store chat messages: batched, on a few threads of their own, off Channels' shared database thread.

Every `message.send` of every socket of this process goes through one writer per event loop. A post joins
the pending batch; up to MESSAGE_POST_THREADS batches run at once, each as ONE database_sync_to_async
call that runs `message_post` for each of its messages in turn (each its own statement and transaction,
its own result or error). When the server is idle a batch is one message and nothing waits; under load
the messages that arrive while a batch is in the database form the next one, so the thread handoff, the
connection check and the GIL handover are paid once per batch instead of once per message.

Safe off the shared thread because message_post publishes nothing but `message.new`, whose order every
socket restores by seq (a hole is filled from the database). Every other state change keeps to the shared
thread, so its events leave in commit order. One socket awaits each of its posts before reading its next
frame, so one sender's messages are stored in the order sent.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from chat.services import PostResult, message_post

MAX_BATCH = 32  # messages per database call: bounds how long the first of a batch waits for the last

_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor | None:
    global _threads
    if settings.MESSAGE_POST_THREADS <= 0:
        return None
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(settings.MESSAGE_POST_THREADS, thread_name_prefix="message-post")
        return _threads


def post_threads_stop() -> None:
    """Closes every message thread's database connection, then the threads (tests; a graceful stop).

    A connection belongs to its thread, so each thread closes its own: one task per thread, held at a
    barrier until all have started, so no thread takes two.
    """
    global _threads
    with _threads_lock:
        executor, _threads = _threads, None
    if executor is None:
        return
    workers = executor._max_workers  # ThreadPoolExecutor keeps its size only here
    barrier = threading.Barrier(workers)

    def close_own_connection() -> None:
        barrier.wait(timeout=30)
        connections.close_all()

    for future in [executor.submit(close_own_connection) for _ in range(workers)]:
        future.result(timeout=60)
    executor.shutdown(wait=True)


Outcome = tuple[bool, Any]  # (True, PostResult) or (False, the exception message_post raised)


def _post_each(batch: list[dict[str, Any]]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for kwargs in batch:
        try:
            outcomes.append((True, message_post(**kwargs)))
        except Exception as exc:  # handed to that message's socket, which answers with an error frame
            outcomes.append((False, exc))
    return outcomes


class _Writer:
    def __init__(self) -> None:
        self.pending: list[tuple[dict[str, Any], asyncio.Future[PostResult]]] = []
        self.running = 0

    async def post(self, kwargs: dict[str, Any]) -> PostResult:
        future: asyncio.Future[PostResult] = asyncio.get_running_loop().create_future()
        self.pending.append((kwargs, future))
        executor = _executor()
        if self.running < (settings.MESSAGE_POST_THREADS if executor is not None else 1):
            self.running += 1
            asyncio.get_running_loop().create_task(self._run(executor))
        return await future

    async def _run(self, executor: ThreadPoolExecutor | None) -> None:
        call = (
            database_sync_to_async(_post_each)
            if executor is None
            else database_sync_to_async(_post_each, thread_sensitive=False, executor=executor)
        )
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                try:
                    outcomes = await call([kwargs for kwargs, _ in batch])
                except BaseException as exc:  # the call itself failed (cancelled, thread gone): tell each waiter
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                    raise
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():  # its socket went away meanwhile
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self.running -= 1


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = weakref.WeakKeyDictionary()


async def post_message(**kwargs: Any) -> PostResult:
    """`message_post(**kwargs)` for a socket, through this loop's writer (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer()
    return await writer.post(kwargs)
