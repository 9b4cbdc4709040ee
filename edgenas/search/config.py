"""The settings of a search, each declared once (:func:`setting`): ``edgenas search``'s flags, the resume identity,
the validation and the strategy settings are all derived from :class:`SearchConfig`'s field metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

from edgenas.defaults import MIN_STEPS_DEFAULT
from edgenas.errors import SearchError
from edgenas.nn.train import TrainConfig, TrainingBudget, training_budget, training_device
from edgenas.search.objectives import Constraints, Objective, parse_objectives
from edgenas.search.strategies import StrategySettings
from edgenas.space.cost import Precision

__all__ = ["DEFAULT_OBJECTIVES", "SearchConfig", "setting", "setting_flag"]


DEFAULT_OBJECTIVES = "error,latency,memory,size"


TRAINED_POPULATION, TABULAR_POPULATION = 16, 8


def setting(default, help: str, *, flag: str | None = None, identity: bool = True, choices: tuple | None = None,
            metavar: str | None = None, kind: type | None = None):
    """One search setting, declared once: its default, its ``edgenas search`` flag (``--name-with-dashes`` unless
    ``flag``), its help, its choices, and whether it is part of the run's identity (what must match to resume)."""
    return field(default=default, metadata={"help": help, "flag": flag, "identity": identity, "choices": choices,
                                            "metavar": metavar, "kind": kind})


def setting_flag(f) -> str:
    """The ``edgenas search`` flag of a :func:`setting` field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _strategy_help() -> str:
    from edgenas.search.strategies import list_strategies

    return "; ".join(f"{s.name}: {s.description}" for s in list_strategies())


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a run (saved as ``config.json`` in the run folder).

    Each field is declared once, with :func:`setting`: the CLI flags of ``edgenas search``
    (:func:`edgenas.cli.search.add_search_command`) and the resume identity (:meth:`identity`) are derived from it.
    """

    data: str = setting("digits", "digits (the bundled default), npz:FILE, imagefolder:DIR or cifar10:DIR")
    problem: str | None = setting(
        None, "a tabular benchmark instead of training: NAS-Bench-201 cells, each evaluation a lookup of error and "
              "latency (objectives error,latency; see: edgenas problems list)", metavar="nb201:DATASET:DEVICE")
    problem_data: str | None = setting(
        None, "another benchmark file of the same layout (default: the shipped nb201_hw.json.gz)", metavar="FILE")
    supernet: str | None = setting(
        None, "a trained supernet folder (edgenas supernet train): each candidate's accuracy is its subnet's, measured "
              "in a forward pass, no training (budgets in the thousands)", metavar="DIR")
    finetune_front: int = setting(0, "with --supernet: after the search, fine-tune each front member from its "
                                     "supernet weights for this many epochs (export then ships those weights)",
                                  metavar="EPOCHS", identity=False)
    space: str = setting("small", "preset or .yaml/.toml file")
    resolution: int | None = setting(None, "input resolution (default: the data's image size, at most the space's "
                                           "largest)")
    device: str = setting("local-ort", "device name or .yaml file")
    precision: str = setting("int8", "deployed precision", choices=("int8", "fp32"))
    table: str | None = setting(None, "latency table to use (default: a shipped or local match, else profile); its "
                                      "measurements are checked on resume by their hash", identity=False)
    objectives: str = setting(DEFAULT_OBJECTIVES, "comma-separated subset of error,latency,energy,memory,size "
                                                  "(error,latency with --problem)")
    max_latency_ms: float | None = setting(None, "hard limit on predicted latency")
    max_energy_mj: float | None = setting(None, "hard limit on predicted energy per inference")
    max_memory_kb: float | None = setting(None, "hard limit on peak inference memory")
    max_size_kb: float | None = setting(None, "hard limit on model size")
    strategy: str = setting("lemonade", _strategy_help)
    population: int | None = setting(None, "candidates per generation (default: 16; 8 with --problem)")
    budget: int = setting(64, "networks trained (or cells looked up)", identity=False)
    time_budget_min: float | None = setting(None, "stop after this many minutes", flag="--time-budget",
                                            metavar="MIN", identity=False)
    epochs: int = setting(6, "training epochs per candidate, at least (raised by --min-steps on small data)")
    finetune_epochs: int = setting(2, "epochs of a child that inherits its parent's weights (lemonade; raised in "
                                      "proportion by --min-steps)")
    min_steps: int = setting(MIN_STEPS_DEFAULT, "optimizer steps of every network trained from scratch, at least (0 "
                                                "turns the rule off)")
    batch_size: int = setting(64, "training batch (halved down to 16 while above 1/8 of the training images)")
    augment: str = setting("none", "light: random crop of the 1/8-padded image (16 px and up), plus a horizontal "
                                   "flip for RGB data (never for greyscale: digits, text); none: off (measured better "
                                   "at the short training of a search; validation is never augmented)",
                           choices=("none", "light"))
    reward: str = setting("penalty", "rl reward: penalty = accuracy - lambda * sum of relative overshoots of the "
                                     "targets; mnasnet = accuracy * (latency / T) ** w, w = --mnasnet-alpha within T, "
                                     "--mnasnet-beta beyond", choices=("penalty", "mnasnet"))
    target_latency_ms: float | None = setting(None, "rl target for latency (default: spread over the space's range to "
                                                    "cover the front)")
    target_energy_mj: float | None = setting(None, "rl target for energy (default: spread over the range)")
    target_memory_kb: float | None = setting(None, "rl target for memory (default: spread over the range)")
    target_size_kb: float | None = setting(None, "rl target for size (default: spread over the range)")
    penalty_weight: float = setting(0.5, "rl: lambda of the penalty reward")
    mnasnet_alpha: float = setting(-0.07, "rl, mnasnet reward: exponent w when latency <= T")
    mnasnet_beta: float = setting(-0.07, "rl, mnasnet reward: exponent w when latency > T")
    entropy_weight: float = setting(0.01, "rl: weight of the controller's entropy bonus")
    optimizer: str = setting("sgd", "training optimizer", choices=("sgd", "adamw"))
    lr: float = setting(0.05, "learning rate")
    label_smoothing: float = setting(0.0, "label smoothing of the training loss")
    val_fraction: float = setting(0.2, "share of the images held out for validation, stratified")
    drift_check: bool | None = setting(
        None, "re-time the table's anchor networks before the search (seconds) and predict with the refitted "
              "calibration; warns beyond +-10%% drift (default: on for local devices, off for remote ones)",
        identity=False, kind=bool)
    workers: int = setting(2, "training processes (local executor)", identity=False)
    threads: int | None = setting(None, "torch threads of each training (default: cores // --workers); with --executor "
                                        "ray also the CPUs each task reserves", identity=False)
    executor: str = setting("local", "where candidates train: local processes on this machine, or ray: tasks on a Ray "
                                     "cluster (see --ray-address)", choices=("local", "ray"), identity=False)
    ray_address: str | None = setting(None, "the Ray cluster of --executor ray: auto, HOST:PORT or ray://HOST:PORT "
                                            "(default: RAY_ADDRESS, else Ray started on this machine)",
                                      metavar="ADDRESS", identity=False)
    task_retries: int = setting(2, "times a candidate is started again where its worker process or Ray node was lost "
                                   "mid-training (then it is recorded as failed, with the reason)", identity=False)
    mode: str = setting("generational", "generational: ask a generation, evaluate it all, tell it (seeded, "
                                        "reproducible); steady: ask for a candidate whenever a worker frees up and "
                                        "tell each result as it arrives (no worker waits for the slowest)",
                        choices=("generational", "steady"), identity=False)
    train_device: str = setting("auto", "where networks train: auto = CUDA where torch sees a GPU, else the CPU "
                                        "(recorded per evaluation)", choices=("auto", "cpu", "cuda"), identity=False)
    seed: int = setting(0, "seed of the strategy, the split and every training")
    run_dir: str | None = setting(None, "run folder (default: runs/<time>-<data>-<strategy>-s<seed>)", identity=False)

    #: Settings added later whose default would change how an older run trains: such a run keeps the old behaviour.
    LEGACY = {"min_steps": 0}

    @classmethod
    def identity(cls) -> tuple[str, ...]:
        """What must match for a run to be resumed (from the fields' declarations)."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("identity", True))

    @classmethod
    def from_saved(cls, saved: dict) -> SearchConfig:
        """The config a run saved; a setting newer than the run was saved without it, and takes its default (or, in
        ``LEGACY``, the value that reproduces how the run trained before the setting existed)."""
        names = {f.name for f in fields(cls)}
        return cls(**{**cls.LEGACY, **{k: v for k, v in saved.items() if k in names}})

    def resolved(self) -> SearchConfig:
        """The config as the run uses it, defaults filled: a tabular problem's objectives are error,latency (what it
        measures) and its population 8 (measured best at 300 lookups, benchmarks/hw_nas_bench.py); a trained
        search's population is 16."""
        config = self
        if self.problem and self.objectives == DEFAULT_OBJECTIVES:
            config = replace(config, objectives="error,latency")
        if self.population is None:
            config = replace(config, population=TABULAR_POPULATION if self.problem else TRAINED_POPULATION)
        return config

    def validate(self) -> tuple[tuple[Objective, ...], Constraints, Precision]:
        """Every setting checked before anything is written (a refused setting leaves no run folder behind)."""
        from edgenas.search.strategies import get_strategy as _known_strategy

        if self.threads is not None and self.threads < 1:
            raise SearchError("--threads must be at least 1")
        if self.train_device == "cuda" and self.executor == "local":
            training_device("cuda")  # no GPU here: refused before any data is read
        if self.task_retries < 0:
            raise SearchError("--task-retries must be at least 0")
        if self.ray_address and self.executor != "ray":
            raise SearchError("--ray-address is for --executor ray; add --executor ray")
        if self.executor == "ray" and (self.ray_address or os.environ.get("RAY_ADDRESS")):
            from edgenas.search.ray_executor import check_reachable

            check_reachable(self.ray_address or os.environ["RAY_ADDRESS"])  # nothing listens: refused now
        if min(self.budget, self.workers, self.epochs, self.finetune_epochs) < 1 or self.resolved().population < 2:
            raise SearchError("--budget, --epochs, --finetune-epochs and --workers must be at least 1, --population at "
                              "least 2")
        if self.finetune_front < 0 or (self.finetune_front and not self.supernet):
            raise SearchError("--finetune-front takes a number of epochs >= 0, and only with --supernet")
        if self.supernet and self.problem:
            raise SearchError("--supernet and --problem are two accuracy sources; give one")
        if self.min_steps < 0 or self.batch_size < 2:
            raise SearchError("--min-steps must be 0 or more and --batch-size at least 2")
        if self.time_budget_min is not None and not self.time_budget_min > 0:
            raise SearchError("--time-budget must be a positive number of minutes")
        targets = (self.target_latency_ms, self.target_energy_mj, self.target_memory_kb, self.target_size_kb)
        if any(t is not None and not t > 0 for t in targets):
            raise SearchError("--target-* values must be positive")
        if not (self.penalty_weight >= 0 and self.entropy_weight >= 0):
            raise SearchError("--penalty-weight and --entropy-weight must be zero or positive")
        if not 0 < self.val_fraction < 1:
            raise SearchError("--val-fraction must be between 0 and 1")
        if self.resolution is not None and not 1 <= self.resolution <= 1024:
            raise SearchError(f"--resolution must be between 1 and 1024 pixels, got {self.resolution}")
        for f in fields(self):  # every setting with declared choices, checked against them
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise SearchError(f"{setting_flag(f)} must be {' or '.join(choices)}, got {getattr(self, f.name)!r}")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                    label_smoothing=self.label_smoothing, augment=self.augment)  # raises on a bad recipe
        _known_strategy(self.strategy)
        precision = Precision(self.precision)  # one of its declared choices (checked above)
        objectives = parse_objectives(self.objectives)
        if Objective.ERROR not in objectives:
            raise SearchError("the objectives must include error (accuracy is what training measures)")
        return objectives, self.constraints(), precision

    def worker_threads(self) -> tuple[int, int]:
        """(training processes, torch threads each) on this machine: the cores shared among the workers (``--threads``
        where given)."""
        cores = os.cpu_count() or 1
        workers = min(self.workers, cores)
        return workers, self.threads or max(1, cores // workers)

    def executor_settings(self):
        """Where the run's candidates are evaluated (:class:`~edgenas.search.executors.ExecutorSettings`)."""
        from edgenas.search.executors import ExecutorSettings

        workers, threads = self.worker_threads()
        gpus = 1.0 if self.train_device == "cuda" else 0.0 if self.train_device == "cpu" else None
        return ExecutorSettings(self.executor, workers, threads, self.ray_address, gpus, self.task_retries)

    def strategy_settings(self) -> StrategySettings:
        targets = tuple((name, value) for name, value in (
            ("latency", self.target_latency_ms), ("energy", self.target_energy_mj), ("memory", self.target_memory_kb),
            ("size", self.target_size_kb)) if value is not None)
        return StrategySettings(self.population, self.finetune_epochs, self.reward, targets, self.penalty_weight,
                                self.mnasnet_alpha, self.mnasnet_beta, self.entropy_weight)

    def constraints(self) -> Constraints:
        return Constraints(self.max_latency_ms, self.max_energy_mj, self.max_memory_kb, self.max_size_kb)

    def training_budget(self, train_images: int) -> TrainingBudget:
        return training_budget(train_images, self.epochs, self.finetune_epochs, self.min_steps, self.batch_size)

    def train_config(self, threads: int, budget: TrainingBudget, in_channels: int) -> TrainConfig:
        """The recipe of a from-scratch candidate; a horizontal flip only for RGB data (never for digits, text)."""
        return TrainConfig(epochs=budget.epochs, batch_size=budget.batch_size, optimizer=self.optimizer, lr=self.lr,
                           label_smoothing=self.label_smoothing, threads=threads, augment=self.augment,
                           flip=in_channels == 3, device=self.train_device)
