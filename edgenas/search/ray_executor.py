"""Candidate evaluations as Ray tasks on a cluster (``edgenas search --executor ray``).

Each task reserves ``threads`` CPUs (the torch threads it trains with) and ``gpus`` GPUs (by default one where the
cluster has GPUs, so training uses CUDA there).  What every task needs (the
dataset, the recipe) goes to the object store once (``ray.put``) and is unpacked once per worker process; results,
trained weights included (as safetensors bytes), come back to the driver, which writes the run folder and the SQLite
archive alone: workers on other hosts never touch either.

Faults: a task whose worker process or node is lost (``WorkerCrashedError``, ``NodeDiedError``, an object lost with
its node) is started again, at most ``retries`` times, and its attempts are recorded; after that it comes back as a
:class:`~edgenas.search.executors.TaskLost` (recorded as a failed evaluation, the search goes on).  An exception
raised by the task itself is not retried.  :meth:`RayExecutor.close` (also on Ctrl-C) cancels what is still running.

Every node needs the same edgenas (and torch) installed as the driver: tasks import it there.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Hashable

from edgenas.errors import SearchError
from edgenas.search.executors import Executor, ExecutorSettings, TaskLost

__all__ = ["RayExecutor", "check_reachable", "connect_ray", "parse_address"]

#: Seconds ray.wait blocks before the executor checks that the cluster can still run the pending tasks.
STALL_CHECK_S = 30.0

_INIT: dict = {}


def _call(init_id: str, initializer: Callable, initargs: tuple, function: Callable, *args):
    """A task on a Ray worker: the worker is initialised once per search (``initargs`` come from the object store),
    then runs ``function(*args)``."""
    if _INIT.get("id") != init_id:
        initializer(*initargs)
        _INIT["id"] = init_id
    return function(*args)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SearchError("--executor ray needs Ray: pip install 'edgenas[ray]'") from None
    return ray


def connect_ray(address: str | None) -> bool:
    """Connect this process to the Ray cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://...``; ``None``:
    ``RAY_ADDRESS``, else a Ray started on this machine for this search).  Returns whether this call connected (False
    where Ray was connected already); a cluster that cannot be reached raises :class:`SearchError`."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        if "AuthToken" in f"{exc} {exc.__cause__}":
            raise SearchError(f"the Ray cluster at {address} wants its authentication token: set RAY_AUTH_MODE=token "
                              "here and give this machine the cluster's token (~/.ray/auth_token, RAY_AUTH_TOKEN or "
                              "RAY_AUTH_TOKEN_PATH)") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot connect to the Ray cluster at {address}: {first}; start one with "
                          "`ray start --head`, or check --ray-address / RAY_ADDRESS") from None
    return True


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address (``None`` for ``auto``); anything else raises :class:`SearchError`."""
    if address == "auto":
        return None
    hostport = address.split("://", 1)[1] if address.startswith("ray://") else address
    host, sep, port = hostport.split("/", 1)[0].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SearchError(f"--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse at once an address nothing listens on (Ray itself retries for minutes)."""
    import socket

    hostport = parse_address(address)
    if hostport is None:
        return
    try:
        with socket.create_connection(hostport, timeout=timeout_s):
            pass
    except OSError as exc:
        raise SearchError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}; start one with "
                          "`ray start --head`, or check --ray-address / RAY_ADDRESS") from None


class RayExecutor(Executor):
    """See the module docstring."""

    def __init__(self, function: Callable, initializer: Callable, initargs: tuple, settings: ExecutorSettings) -> None:
        ray = self.ray = _import_ray()
        self.settings = settings
        self._connected = connect_ray(settings.address)
        try:
            self.cpus = float(settings.threads)
            self.gpus = float(settings.gpus) if settings.gpus is not None else (1.0 if self._total("GPU") else 0.0)
            self._check_resources()
            self.slots = max(1, int(self._total("CPU") // self.cpus))
            if self.gpus:
                self.slots = min(self.slots, max(1, int(self._total("GPU") // self.gpus)))
            self._function, self._initializer = function, initializer
            self._init_id = uuid.uuid4().hex
            self._initargs = ray.put(initargs)  # the dataset goes to the object store once
            self._remote = ray.remote(_call).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        except BaseException:
            self.close()
            raise
        self._refs: dict = {}  # ObjectRef -> (key, args, attempt), in submission order

    # ----------------------------------------------------------- resources
    def _alive_nodes(self) -> list[dict]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def _total(self, resource: str) -> float:
        return sum(n.get("Resources", {}).get(resource, 0.0) for n in self._alive_nodes())

    def _check_resources(self) -> None:
        """Refuse a task no node can run (it would wait forever)."""
        fits = [n for n in self._alive_nodes() if n.get("Resources", {}).get("CPU", 0.0) >= self.cpus
                and n.get("Resources", {}).get("GPU", 0.0) >= self.gpus]
        if not fits:
            biggest = max((n.get("Resources", {}).get("CPU", 0.0) for n in self._alive_nodes()), default=0.0)
            need = f"{self.cpus:g} CPU(s)" + (f" and {self.gpus:g} GPU(s)" if self.gpus else "")
            raise SearchError(f"no node of the Ray cluster can run a task of {need} (the largest alive node has "
                              f"{biggest:g} CPU(s)); lower --threads, or add nodes with `ray start --address`")

    # -------------------------------------------------------------- tasks
    def submit(self, key: Hashable, args: tuple, attempt: int = 1) -> None:
        ref = self._remote.remote(self._init_id, self._initializer, self._initargs, self._function, *args)
        self._refs[ref] = (key, args, attempt)

    @property
    def pending(self) -> int:
        return len(self._refs)

    def wait(self):
        ray = self.ray
        while True:
            if not self._refs:
                raise LookupError("no task is pending")
            ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=STALL_CHECK_S)
            if not ready:
                self._check_resources()  # a cluster that lost every node able to run them: stop, do not hang
                continue
            ref = ready[0]
            key, args, attempt = self._refs.pop(ref)
            try:
                return key, ray.get(ref), attempt
            except ray.exceptions.TaskCancelledError:
                return key, TaskLost("cancelled"), attempt
            except ray.exceptions.RayTaskError as exc:  # the task itself raised: not a lost worker, not retried
                return key, TaskLost(_first_line(exc)), attempt
            except ray.exceptions.RayError as exc:  # worker or node lost: start it again, within the retries
                if attempt <= self.settings.retries:
                    time.sleep(min(0.5 * attempt, 2.0))  # let the cluster notice the loss first
                    self.submit(key, args, attempt + 1)
                    continue
                return key, TaskLost(f"lost {attempt} time(s), the last: {type(exc).__name__}: "
                                     f"{_first_line(exc)}"), attempt

    def close(self) -> None:
        refs, self._refs = list(getattr(self, "_refs", {})), {}
        for ref in refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that finished or whose node is gone needs no cancelling
                pass
        if self._connected:
            self._connected = False
            self.ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
