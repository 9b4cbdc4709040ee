"""Where candidate training runs: a small interface with local implementations.

An :class:`Executor` takes a batch of tasks (each a key and the arguments of
the training function) and yields ``(key, result)`` pairs as they finish, so
the search records every evaluation the moment it is done.

- :class:`InProcessExecutor`: one worker, in this process.
- :class:`LocalProcessExecutor`: ``workers`` spawned processes on this machine
  (spawned, not forked: forking a process that runs torch or JAX threads can
  deadlock), each training with ``cores // workers`` threads.

A Ray-cluster executor for users who outgrow one machine implements the same
two methods.
"""

from __future__ import annotations

import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

__all__ = ["Executor", "InProcessExecutor", "LocalProcessExecutor", "make_executor"]

Task = tuple[Hashable, tuple]


class Executor(ABC):
    """Runs ``function(*args)`` for each task; see the module docstring."""

    @abstractmethod
    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Hashable, Any]]:
        """Yield ``(key, result)`` for every task, in the order they finish."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers (pending tasks are cancelled)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class InProcessExecutor(Executor):
    def __init__(self, function: Callable, initializer: Callable, initargs: tuple) -> None:
        self.function = function
        initializer(*initargs)

    def run(self, tasks):
        for key, args in tasks:
            yield key, self.function(*args)


def _die_with_parent(parent: int, initializer: Callable, initargs: tuple) -> None:
    """Worker start-up: end this worker when the search process dies (even by kill -9), then initialise it.

    On Linux the kernel sends SIGKILL when the parent goes (``PR_SET_PDEATHSIG``); elsewhere a daemon thread
    polls for the parent every second.
    """
    import os
    import signal
    import sys
    import threading
    import time

    done = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            done = ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL)) == 0  # PR_SET_PDEATHSIG
        except OSError:
            done = False
    if os.getppid() != parent:  # the parent died before the call above took effect
        os._exit(1)
    if not done:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    initializer(*initargs)


class LocalProcessExecutor(Executor):
    def __init__(self, function: Callable, workers: int, initializer: Callable, initargs: tuple) -> None:
        import os

        self.function = function
        self.pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent,
            initargs=(os.getpid(), initializer, initargs),
        )

    def run(self, tasks):
        futures = {self.pool.submit(self.function, *args): key for key, args in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def make_executor(function: Callable, workers: int, initializer: Callable, initargs: tuple) -> Executor:
    """In-process for one worker, else local spawned processes."""
    if workers <= 1:
        return InProcessExecutor(function, initializer, initargs)
    return LocalProcessExecutor(function, workers, initializer, initargs)
