"""Accuracy sources of a search, behind one interface (:class:`Evaluator`): training in worker processes
(:class:`TrainingEvaluator`) or lookups in a tabular benchmark (:class:`TabularEvaluator`).  The loop and the
strategies never know which one answers."""

from __future__ import annotations

import os
import zlib
from collections import deque
from pathlib import Path

from edgenas.files import atomic_write_bytes
from edgenas.nn.train import TrainConfig, TrainingBudget, at_chance
from edgenas.search.archive import Archive
from edgenas.search.config import SearchConfig
from edgenas.search.executors import TaskLost, make_executor
from edgenas.search.runs import weights_path

__all__ = ["Evaluator", "SupernetEvaluator", "train_architecture", "TabularEvaluator", "TrainingEvaluator"]


class Evaluator:
    """The accuracy source of a search: turns feasible new candidates into results, recorded as each finishes.

    ``submit(job, archive)`` starts a job ``(i, arch_text, hardware_values, candidate)``; ``wait()`` returns the next
    finished one as ``(job, result)`` with ``result`` holding ``status``, ``accuracy`` (0..1 or None),
    ``train_seconds``, ``epochs``, ``steps``, ``seed``, ``weights``, ``reason``, ``at_chance``, ``attempts`` and
    ``train_device``; ``slots`` jobs run at once.  ``run(jobs, archive)`` is a batch of them (a generation).
    Strategies never know which source answers.
    """

    majority_rate = 0.0
    slots = 1

    def open(self, run_dir: Path) -> None:  # noqa: B027 - optional hook
        pass

    def submit(self, job, archive: Archive) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def wait(self):  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def pending(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def run(self, jobs, archive: Archive):
        """Submit every job; yield ``(job, result)`` for each as it finishes."""
        for job in jobs:
            self.submit(job, archive)
        while self.pending:
            yield self.wait()

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def _lost(r) -> dict:
    """The result of a task its executor could not complete (worker or node lost on every attempt)."""
    return {"status": "failed", "accuracy": None, "train_seconds": 0.0, "epochs": 0, "steps": 0, "weights": None,
            "reason": f"not evaluated: {r.reason}", "train_device": ""}


class _ExecutorEvaluator(Evaluator):
    """An accuracy source whose jobs are tasks of an executor (:mod:`edgenas.search.executors`)."""

    executor = None

    @property
    def slots(self) -> int:
        return self.executor.slots if self.executor is not None else 1

    @property
    def pending(self) -> int:
        return self.executor.pending if self.executor is not None else 0

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None


class TrainingEvaluator(_ExecutorEvaluator):
    """Training in worker processes (or Ray tasks): from scratch with the run's recipe, or fine-tuned from a
    parent's weights.  Workers send trained weights back as safetensors bytes; this process writes them."""

    def __init__(self, config: SearchConfig, space, split, data, budget: TrainingBudget) -> None:
        self.config, self.space, self.split, self.data, self.budget = config, space, split, data, budget
        self.majority_rate = data.majority_rate

    def open(self, run_dir: Path) -> None:
        settings = self.config.executor_settings()
        self.run_dir = run_dir
        train_config = self.config.train_config(settings.threads, self.budget, self.data.in_channels)
        init_args = (self.space.to_dict(), (self.split.normalised("train"), self.split.normalised("val")),
                     train_config, self.data.in_channels, self.data.num_classes)
        self.executor = make_executor(_train_task, settings, _init_worker, init_args)

    def submit(self, job, archive: Archive) -> None:
        _, text, _, cand = job
        seed = _training_seed(text, self.config.seed)
        parent = archive.get(cand.parent) if cand.parent else None
        if parent is not None and parent.weights:  # inherit and fine-tune, with the minimum of steps
            epochs = self.budget.finetune(cand.epochs if cand.epochs is not None else self.config.finetune_epochs)
            parent_bytes = weights_path(self.run_dir, parent.weights).read_bytes()
            args = (text, seed, epochs, parent.arch, parent_bytes)
        else:  # from scratch, with the run's resolved epochs
            args = (text, seed, None, None, None)
        self.executor.submit((job, seed), args)

    def wait(self):
        (job, seed), r, attempts = self.executor.wait()
        r = _lost(r) if isinstance(r, TaskLost) else dict(r)
        blob = r.pop("weights_bytes", None)
        r["weights"] = None
        if r["status"] == "ok" and blob is not None:
            name = f"weights/{zlib.crc32(job[1].encode()):08x}-{seed}.safetensors"
            path = weights_path(self.run_dir, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, blob)
            r["weights"] = name
        return job, {**r, "seed": seed, "steps": r.get("steps", 0), "attempts": attempts,
                     "at_chance": at_chance(r["accuracy"], self.majority_rate, len(self.split.val))}


class TabularEvaluator(Evaluator):
    """A tabular benchmark: each evaluation is a lookup of the architecture's accuracy (no training)."""

    def __init__(self, problem, space) -> None:
        self.problem, self.space = problem, space
        self.queue: deque = deque()

    def submit(self, job, archive: Archive) -> None:
        self.queue.append(job)

    @property
    def pending(self) -> int:
        return len(self.queue)

    def wait(self):
        job = self.queue.popleft()
        return job, self.lookup(job)

    def lookup(self, job) -> dict:
        """The result of ``job``: the benchmark's accuracy of its architecture."""
        error = float(self.problem.error_pct(self.space.encode(job[3].arch)[None])[0])
        return {"status": "ok", "accuracy": (100.0 - error) / 100.0, "train_seconds": 0.0, "epochs": 0, "steps": 0,
                "seed": 0, "weights": None, "reason": "", "at_chance": False, "attempts": 1, "train_device": ""}


def _training_seed(arch_text: str, run_seed: int) -> int:
    return (zlib.crc32(arch_text.encode()) + 7919 * run_seed) % (2**31)


_WORKER: dict = {}


def _init_worker(space_dict: dict, data: tuple, train_config: TrainConfig, in_channels: int,
                 num_classes: int) -> None:
    import torch

    from edgenas.space.mbconv import space_from_dict

    torch.set_num_threads(train_config.threads)
    _WORKER.update(space=space_from_dict(space_dict), train=data[0], val=data[1], config=train_config,
                   in_channels=in_channels, num_classes=num_classes)


def _train_task(arch_text: str, seed: int, epochs: int | None, parent_text: str | None,
                parent_weights: bytes | None) -> dict:
    """Train one candidate in a worker, from its parent's weights (safetensors bytes) if given; the trained weights
    come back as safetensors bytes (``weights_bytes``), for the search process to write."""
    from dataclasses import replace

    import torch

    from edgenas.nn.inherit import inherit_weights
    from edgenas.nn.model import build_model
    from edgenas.nn.train import train_candidate, weights_from_bytes, weights_to_bytes

    w = _WORKER
    arch = w["space"].parse(arch_text)
    torch.manual_seed(seed)
    model = build_model(w["space"], arch, w["num_classes"], w["in_channels"])
    if parent_text and parent_weights:
        try:
            parent = build_model(w["space"], w["space"].parse(parent_text), w["num_classes"], w["in_channels"])
            parent.load_state_dict(weights_from_bytes(parent_weights))
            inherit_weights(parent, model)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed candidate, the search goes on
            return {"status": "failed", "accuracy": None, "train_seconds": 0.0, "epochs": 0, "steps": 0,
                    "weights_bytes": None, "train_device": "",
                    "reason": f"inheriting weights from {parent_text}: {type(exc).__name__}: {exc}"}
    config = w["config"] if epochs is None else replace(w["config"], epochs=epochs)
    result = train_candidate(model, w["train"], w["val"], config, seed)
    blob = None
    if result.status == "ok" and result.state is not None:
        blob = weights_to_bytes(result.state)
    return {"status": result.status, "accuracy": result.accuracy, "train_seconds": result.train_seconds,
            "epochs": result.epochs, "steps": result.steps, "reason": result.reason, "weights_bytes": blob,
            "train_device": result.device}


class SupernetEvaluator(_ExecutorEvaluator):
    """A trained supernet: each evaluation is the subnet's validation accuracy after BatchNorm recalibration
    (:mod:`edgenas.nn.supernet`), in worker processes that each load the supernet once."""

    def __init__(self, config: SearchConfig, majority_rate: float, n_val: int) -> None:
        self.config, self.majority_rate, self.n_val = config, majority_rate, n_val

    def open(self, run_dir: Path) -> None:
        settings = self.config.executor_settings()
        self.executor = make_executor(_supernet_task, settings, _init_supernet_worker,
                                      (str(Path(self.config.supernet).resolve()), self.config.data, settings.threads))

    def submit(self, job, archive: Archive) -> None:
        self.executor.submit(job, (job[1],))

    def wait(self):
        job, r, attempts = self.executor.wait()
        r = _lost(r) if isinstance(r, TaskLost) else r
        return job, {**r, "seed": 0, "attempts": attempts, "train_device": "cpu" if r["status"] == "ok" else "",
                     "at_chance": at_chance(r["accuracy"], self.majority_rate, self.n_val)}


_SUPERNET: dict = {}


def _init_supernet_worker(folder: str, data_spec: str, threads: int) -> None:
    import torch

    from edgenas.nn.supernet import load_supernet

    torch.set_num_threads(threads)
    _SUPERNET["net"] = load_supernet(folder, data_spec)


def _supernet_task(arch_text: str) -> dict:
    import time

    net = _SUPERNET["net"]
    started = time.perf_counter()
    try:
        accuracy = net.accuracy(net.space.parse(arch_text))
    except Exception as exc:  # noqa: BLE001 - recorded as a failed candidate, the search goes on
        return {"status": "failed", "accuracy": None, "train_seconds": time.perf_counter() - started, "epochs": 0,
                "steps": 0, "weights": None, "reason": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "accuracy": accuracy, "train_seconds": time.perf_counter() - started, "epochs": 0,
            "steps": 0, "weights": None, "reason": ""}


def train_architecture(arch_text: str, space_name: str = "small", data_spec: str = "digits",
                       epochs: int | None = None, seed: int = 0, training_seed: int | None = None,
                       threads: int | None = None):
    """Train one architecture stand-alone with a search's default recipe (the training a search with ``seed``
    gives it from scratch, on the same validation split); returns the :class:`~edgenas.nn.train.TrainResult`.
    The architecture's resolution becomes the space's.  ``training_seed`` replaces the seed of the weights and
    batches alone (the split stays ``seed``'s): how much the accuracy owes to the draw.  ``threads``: torch threads
    (default: every core)."""
    import torch

    from edgenas.nn.data import load_data
    from edgenas.nn.model import build_model
    from edgenas.nn.train import train_candidate
    from edgenas.space.genome import Architecture
    from edgenas.space.mbconv import get_space

    config = SearchConfig(data=data_spec, space=space_name, seed=seed, **({"epochs": epochs} if epochs else {}))
    config.validate()
    arch = Architecture.parse(arch_text)
    space = get_space(space_name).with_choices(resolutions=[arch.resolution])
    arch = space.validate(arch)
    data = load_data(data_spec).resized(arch.resolution)
    split = data.split(config.val_fraction, config.seed)
    budget = config.training_budget(len(split.train))
    recipe = config.train_config(threads or os.cpu_count() or 1, budget, data.in_channels)
    seed_ = _training_seed(str(arch), config.seed) if training_seed is None else training_seed
    torch.manual_seed(seed_)
    model = build_model(space, arch, data.num_classes, data.in_channels)
    return train_candidate(model, split.normalised("train"), split.normalised("val"), recipe, seed_)
