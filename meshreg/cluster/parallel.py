"""Independent API requests sent at once: results come back in the order asked, so output stays deterministic.

The official client's urllib3 pool is thread-safe, and a request spends its time waiting on the network, so threads
are enough; the connection pool is sized to WORKERS in `client.connect` so no connection is opened and thrown away.
The threads are daemons of our own rather than a ThreadPoolExecutor's, which the interpreter joins at exit: Ctrl-C
must end meshreg at once, not after a request the API server holds has timed out.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

from meshreg.errors import ClusterError

WORKERS = 16  # requests in flight at once: about one render's worth of objects

T = TypeVar("T")
R = TypeVar("R")


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[tuple[T, R | None, ClusterError | None]]:
    """(item, fn(item), None) or (item, None, the ClusterError it raised) for every item, in the items' order.
    Anything else raised (a bug) propagates. Interrupted (Ctrl-C), what has not started never starts."""
    items = list(items)
    if len(items) <= 1:
        return [_one(fn, item) for item in items]
    todo: queue.SimpleQueue[tuple[int, T]] = queue.SimpleQueue()
    for index, item in enumerate(items):
        todo.put((index, item))
    done: queue.SimpleQueue[tuple[int, tuple[T, R | None, ClusterError | None] | BaseException]] = \
        queue.SimpleQueue()
    stop = threading.Event()
    for _ in range(min(WORKERS, len(items))):
        threading.Thread(target=_work, args=(fn, todo, done, stop), daemon=True, name="meshreg").start()
    results: dict[int, tuple[T, R | None, ClusterError | None]] = {}
    try:
        while len(results) < len(items):
            index, result = done.get()
            if isinstance(result, BaseException):
                raise result
            results[index] = result
    finally:
        stop.set()
    return [results[i] for i in range(len(items))]


def _work(fn: Callable[[T], R], todo: queue.SimpleQueue[tuple[int, T]],
          done: queue.SimpleQueue[tuple[int, tuple[T, R | None, ClusterError | None] | BaseException]],
          stop: threading.Event) -> None:
    """Take items until there are none left (or the caller stopped waiting)."""
    while not stop.is_set():
        try:
            index, item = todo.get_nowait()
        except queue.Empty:
            return
        try:
            done.put((index, _one(fn, item)))
        except BaseException as e:  # a bug: the caller raises it
            done.put((index, e))


def _one(fn: Callable[[T], R], item: T) -> tuple[T, R | None, ClusterError | None]:
    try:
        return item, fn(item), None
    except ClusterError as e:
        return item, None, e


def values(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """fn(item) for every item, concurrently, in order; the first ClusterError (in the items' order) is raised."""
    out: list[R] = []
    for _, value, error in each(fn, items):
        if error is not None:
            raise error
        out.append(cast(R, value))  # no error: what fn returned
    return out
