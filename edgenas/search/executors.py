"""Where candidate training runs: a small interface with local and Ray implementations.

An :class:`Executor` takes tasks (each a key and the arguments of the task
function) and yields ``(key, result, attempts)`` as they finish, so the search
records every evaluation the moment it is done.  ``submit``/``wait`` are the
same thing one task at a time, for a steady-state search that hands a freed
worker its next candidate at once (``run`` is built on them).

- :class:`InProcessExecutor`: one worker, in this process.
- :class:`LocalProcessExecutor`: ``workers`` spawned processes on this machine
  (spawned, not forked: forking a process that runs torch or JAX threads can
  deadlock), each training with ``cores // workers`` threads.
- :class:`RayExecutor` (:mod:`edgenas.search.ray_executor`): each task a Ray
  task on a cluster, retried where a worker or node is lost.

A result is what the task function returned, or a :class:`TaskLost` where the
task could not be completed (its worker or node was lost more often than the
retries allow).
"""

from __future__ import annotations

import multiprocessing
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

__all__ = ["Executor", "ExecutorSettings", "InProcessExecutor", "LocalProcessExecutor", "TaskLost", "make_executor"]

Task = tuple[Hashable, tuple]


@dataclass(frozen=True)
class TaskLost:
    """A task that did not complete: the worker process or node running it was lost on every attempt."""

    reason: str


class Executor(ABC):
    """Runs ``function(*args)`` for each task; see the module docstring."""

    #: Tasks that run at the same time (what a steady-state search keeps in flight).
    slots: int = 1

    @abstractmethod
    def submit(self, key: Hashable, args: tuple) -> None:
        """Start ``function(*args)`` (or queue it until a worker is free)."""

    @abstractmethod
    def wait(self) -> tuple[Hashable, Any, int]:
        """The next finished task: ``(key, result, attempts)``.  Raises ``LookupError`` when none is pending."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Tasks submitted and not yet returned by :meth:`wait`."""

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Hashable, Any, int]]:
        """Submit every task; yield ``(key, result, attempts)`` for each, in the order they finish."""
        for key, args in tasks:
            self.submit(key, args)
        while self.pending:
            yield self.wait()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers (pending tasks are cancelled)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class InProcessExecutor(Executor):
    def __init__(self, function: Callable, initializer: Callable, initargs: tuple) -> None:
        self.function = function
        self.queue: deque[Task] = deque()
        initializer(*initargs)

    def submit(self, key, args) -> None:
        self.queue.append((key, args))

    def wait(self):
        if not self.queue:
            raise LookupError("no task is pending")
        key, args = self.queue.popleft()
        return key, self.function(*args), 1

    @property
    def pending(self) -> int:
        return len(self.queue)

    def close(self) -> None:
        self.queue.clear()


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
    """``workers`` spawned processes.  A worker that dies mid-task (killed, out of memory) breaks the whole pool:
    the pool is started again and every task it was running is submitted again, at most ``retries`` times each,
    after that it comes back as a :class:`TaskLost`."""

    def __init__(self, function: Callable, workers: int, initializer: Callable, initargs: tuple,
                 retries: int = 2) -> None:
        import os

        self.function, self.retries = function, retries
        self.slots = workers
        self._pool_args = dict(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(), initializer, initargs))
        self.pool = ProcessPoolExecutor(**self._pool_args)
        self.futures: dict[Future, tuple[Hashable, tuple, int]] = {}  # in submission order
        self._lost: deque[tuple[Hashable, TaskLost, int]] = deque()

    def submit(self, key, args, attempt: int = 1) -> None:
        self.futures[self.pool.submit(self.function, *args)] = (key, args, attempt)

    def wait(self):
        while True:
            if self._lost:
                return self._lost.popleft()
            if not self.futures:
                raise LookupError("no task is pending")
            done, _ = futures_wait(self.futures, return_when=FIRST_COMPLETED)
            order = list(self.futures)
            future = min(done, key=order.index)  # several done at once: the first submitted first
            if not isinstance(future.exception(), BrokenProcessPool):
                key, _, attempt = self.futures.pop(future)
                return key, future.result(), attempt
            self._restart()

    def _restart(self) -> None:
        """The pool broke (a worker died): a new pool, and every task of the old one submitted again or lost."""
        broken, self.futures = list(self.futures.values()), {}
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = ProcessPoolExecutor(**self._pool_args)
        for key, args, attempt in broken:
            if attempt <= self.retries:
                self.submit(key, args, attempt + 1)
            else:
                self._lost.append((key, TaskLost(f"its worker process died {attempt} time(s)"), attempt))

    @property
    def pending(self) -> int:
        return len(self.futures) + len(self._lost)

    def close(self) -> None:
        self.futures.clear()
        self._lost.clear()
        self.pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class ExecutorSettings:
    """Where tasks run: ``local`` (in this process for one worker, else ``workers`` spawned processes) or ``ray`` (a
    cluster at ``address``: ``None`` reads ``RAY_ADDRESS`` or starts Ray on this machine; each task reserves
    ``threads`` CPUs and ``gpus`` GPUs, ``None``: one where the cluster has GPUs).  A task whose worker process
    or node is lost is started again at most ``retries`` times.  Each task trains with ``threads`` torch threads."""

    kind: str = "local"
    workers: int = 1
    threads: int = 1
    address: str | None = None
    gpus: float | None = 0.0
    retries: int = 2


def make_executor(function: Callable, workers: int | ExecutorSettings, initializer: Callable,
                  initargs: tuple) -> Executor:
    """The executor of ``settings`` (a plain number of workers: local)."""
    settings = workers if isinstance(workers, ExecutorSettings) else ExecutorSettings(workers=workers)
    if settings.kind == "ray":
        from edgenas.search.ray_executor import RayExecutor

        return RayExecutor(function, initializer, initargs, settings)
    if settings.workers <= 1:
        return InProcessExecutor(function, initializer, initargs)
    return LocalProcessExecutor(function, settings.workers, initializer, initargs, settings.retries)
