"""Accuracy sources of a search, behind one interface (:class:`Evaluator`): training in worker processes
(:class:`TrainingEvaluator`) or lookups in a tabular benchmark (:class:`TabularEvaluator`).  The loop and the
strategies never know which one answers."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from edgenas.nn.train import TrainConfig, TrainingBudget, at_chance
from edgenas.search.archive import Archive
from edgenas.search.config import SearchConfig
from edgenas.search.executors import make_executor
from edgenas.search.runs import weights_path

__all__ = ["Evaluator", "SupernetEvaluator", "train_architecture", "TabularEvaluator", "TrainingEvaluator"]


class Evaluator:
    """The accuracy source of a search: turns feasible new candidates into results, recorded as each finishes.

    ``run(jobs, archive)`` takes ``(i, arch_text, hardware_values, candidate)`` jobs and yields ``(job, result)``
    with ``result`` holding ``status``, ``accuracy`` (0..1 or None), ``train_seconds``, ``epochs``, ``steps``,
    ``seed``, ``weights``, ``reason`` and ``at_chance``.  Strategies never know which source answers.
    """

    majority_rate = 0.0

    def open(self, run_dir: Path) -> None:  # noqa: B027 - optional hook
        pass

    def run(self, jobs, archive: Archive):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class TrainingEvaluator(Evaluator):
    """Training in worker processes: from scratch with the run's recipe, or fine-tuned from a parent's weights."""

    def __init__(self, config: SearchConfig, space, split, data, budget: TrainingBudget) -> None:
        self.config, self.space, self.split, self.data, self.budget = config, space, split, data, budget
        self.majority_rate = data.majority_rate
        self.executor = None

    def open(self, run_dir: Path) -> None:
        workers, threads = self.config.worker_threads()
        self.run_dir = run_dir
        train_config = self.config.train_config(threads, self.budget, self.data.in_channels)
        init_args = (self.space.to_dict(), (self.split.normalised("train"), self.split.normalised("val")),
                     train_config, self.data.in_channels, self.data.num_classes, str(run_dir.resolve()))
        self.executor = make_executor(_train_task, workers, _init_worker, init_args)

    def run(self, jobs, archive: Archive):
        tasks = []
        for job in jobs:
            _, text, _, cand = job
            seed = _training_seed(text, self.config.seed)
            parent = archive.get(cand.parent) if cand.parent else None
            if parent is not None and parent.weights:  # inherit and fine-tune, with the minimum of steps
                epochs = self.budget.finetune(cand.epochs if cand.epochs is not None else self.config.finetune_epochs)
                args = (text, seed, epochs, parent.arch, str(weights_path(self.run_dir, parent.weights)))
            else:  # from scratch, with the run's resolved epochs
                args = (text, seed, None, None, None)
            tasks.append(((job, seed), args))
        n_val = len(self.split.val)
        for (job, seed), r in self.executor.run(tasks):
            yield job, {**r, "seed": seed, "steps": r.get("steps", 0),
                        "at_chance": at_chance(r["accuracy"], self.majority_rate, n_val)}

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


class TabularEvaluator(Evaluator):
    """A tabular benchmark: each evaluation is a lookup of the architecture's accuracy (no training)."""

    def __init__(self, problem, space) -> None:
        self.problem, self.space = problem, space

    def run(self, jobs, archive: Archive):
        for job in jobs:
            _, text, _, cand = job
            error = float(self.problem.error_pct(self.space.encode(cand.arch)[None])[0])
            yield job, {"status": "ok", "accuracy": (100.0 - error) / 100.0, "train_seconds": 0.0, "epochs": 0,
                        "steps": 0, "seed": 0, "weights": None, "reason": "", "at_chance": False}


def _training_seed(arch_text: str, run_seed: int) -> int:
    return (zlib.crc32(arch_text.encode()) + 7919 * run_seed) % (2**31)


_WORKER: dict = {}


def _init_worker(space_dict: dict, data: tuple, train_config: TrainConfig, in_channels: int, num_classes: int,
                 run_dir: str) -> None:
    import torch

    from edgenas.space.mbconv import space_from_dict

    torch.set_num_threads(train_config.threads)
    _WORKER.update(space=space_from_dict(space_dict), train=data[0], val=data[1], config=train_config,
                   in_channels=in_channels, num_classes=num_classes, run_dir=Path(run_dir))


def _train_task(arch_text: str, seed: int, epochs: int | None, parent_text: str | None,
                parent_weights: str | None) -> dict:
    """Train one candidate in a worker, from its parent's weights if given; weights go to the run's folder.

    The returned weights path is relative to the run folder.
    """
    from dataclasses import replace

    import torch

    from edgenas.nn.inherit import inherit_weights
    from edgenas.nn.model import build_model
    from edgenas.nn.train import load_weights, save_weights, train_candidate

    w = _WORKER
    arch = w["space"].parse(arch_text)
    torch.manual_seed(seed)
    model = build_model(w["space"], arch, w["num_classes"], w["in_channels"])
    if parent_text and parent_weights:
        try:
            parent = build_model(w["space"], w["space"].parse(parent_text), w["num_classes"], w["in_channels"])
            parent.load_state_dict(load_weights(parent_weights))
            inherit_weights(parent, model)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed candidate, the search goes on
            return {"status": "failed", "accuracy": None, "train_seconds": 0.0, "epochs": 0, "steps": 0, "weights": None,
                    "reason": f"inheriting weights from {parent_text}: {type(exc).__name__}: {exc}"}
    config = w["config"] if epochs is None else replace(w["config"], epochs=epochs)
    result = train_candidate(model, w["train"], w["val"], config, seed)
    weights = None
    if result.status == "ok" and result.state is not None:
        name = f"{zlib.crc32(arch_text.encode()):08x}-{seed}.safetensors"
        save_weights(result.state, w["run_dir"] / "weights" / name)
        weights = f"weights/{name}"
    return {"status": result.status, "accuracy": result.accuracy, "train_seconds": result.train_seconds,
            "epochs": result.epochs, "steps": result.steps, "reason": result.reason, "weights": weights}


class SupernetEvaluator(Evaluator):
    """A trained supernet: each evaluation is the subnet's validation accuracy after BatchNorm recalibration
    (:mod:`edgenas.nn.supernet`), in worker processes that each load the supernet once."""

    def __init__(self, config: SearchConfig, majority_rate: float, n_val: int) -> None:
        self.config, self.majority_rate, self.n_val = config, majority_rate, n_val
        self.executor = None

    def open(self, run_dir: Path) -> None:
        workers, threads = self.config.worker_threads()
        self.executor = make_executor(_supernet_task, workers, _init_supernet_worker,
                                      (self.config.supernet, self.config.data, threads))

    def run(self, jobs, archive: Archive):
        for job, r in self.executor.run([(job, (job[1],)) for job in jobs]):
            yield job, {**r, "seed": 0, "at_chance": at_chance(r["accuracy"], self.majority_rate, self.n_val)}

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


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
                       epochs: int | None = None, seed: int = 0):
    """Train one architecture stand-alone with a search's default recipe (the training a search with ``seed``
    gives it from scratch, on the same validation split); returns the :class:`~edgenas.nn.train.TrainResult`.
    The architecture's resolution becomes the space's."""
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
    recipe = config.train_config(os.cpu_count() or 1, budget, data.in_channels)  # one network: every core
    seed_ = _training_seed(str(arch), config.seed)
    torch.manual_seed(seed_)
    model = build_model(space, arch, data.num_classes, data.in_channels)
    return train_candidate(model, split.normalised("train"), split.normalised("val"), recipe, seed_)
