"""Run a function over many items on all local cores (worker processes), results as they finish.

Workers are started once per pool with the large shared arguments (a base scenario), so each task
only ships a small item. ``workers=1`` runs in this process: no pickling, the reference for
per-core throughput. On an interrupt the pending tasks are cancelled and the workers killed; what already
finished has been yielded. Workers die with their parent however it ends (Linux: the kernel sends them
SIGKILL when it exits, even by SIGKILL), and ignore Ctrl-C, which the parent handles for them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, ProcessPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")

_SHARED: tuple[Any, ...] = ()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shared() -> tuple[Any, ...]:
    """The arguments the pool was started with (inside a worker, or in-process with ``workers=1``)."""
    return _SHARED


#: prctl(2) option: the signal this process gets when its parent exits.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In a worker: be killed when the parent process exits, and leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pool's shutdown is the only cleanup
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init(parent: int, *args: Any) -> None:
    global _SHARED
    _die_with_parent(parent)
    _SHARED = args


def _quiet_broken_pool_thread() -> None:
    """After its workers are killed, the executor's manager thread marks every pending future as failed, and
    raises InvalidStateError on those already cancelled (seen with CPython 3.11): a traceback on stderr
    for an interrupt the user asked for. Swallow that one exception from threads; pass on any other."""
    previous = threading.excepthook
    if getattr(previous, "trainsim_pool", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not InvalidStateError:
            previous(args)

    hook.trainsim_pool = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class Pool:
    """A process pool whose workers hold ``shared_args``; use as a context manager."""

    def __init__(self, shared_args: tuple[Any, ...], workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.shared_args = shared_args
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> Pool:
        if self.workers > 1:
            self._executor = ProcessPoolExecutor(self.workers, initializer=_init,
                                                 initargs=(os.getpid(), *self.shared_args))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is None:
            return
        if exc[0] is not None:  # interrupted or failed: stop the workers now, not after their current task
            _quiet_broken_pool_thread()
            for process in list(getattr(self._executor, "_processes", {}).values()):
                process.kill()
        self._executor.shutdown(wait=exc[0] is None, cancel_futures=True)

    def imap_unordered(self, fn: Callable[[T], Any], items: Iterable[T]) -> Iterator[tuple[T, Any]]:
        """``(item, fn(item))`` in completion order; ``fn`` reads the shared arguments via :func:`shared`."""
        if self._executor is None:
            global _SHARED
            saved, _SHARED = _SHARED, self.shared_args
            try:
                for item in items:
                    yield item, fn(item)
            finally:
                _SHARED = saved
            return
        # Keep a bounded window of tasks in flight so an interrupt cancels little and memory stays flat.
        todo = iter(items)
        window = 4 * self.workers
        running: dict[Future, T] = {}
        try:
            for item in todo:
                running[self._executor.submit(fn, item)] = item
                if len(running) >= window:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    yield item, fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        running[self._executor.submit(fn, nxt)] = nxt
        finally:
            for fut in running:
                fut.cancel()
