"""The search loop: strategies ask, candidates are trained (or rejected early), the front grows.

``run_search(config)`` resolves the data, the space (at the data's
resolution unless told otherwise), the device and its latency table (a shipped
one that matches, else one profiled on this machine on first use), sets up the
strategy, and loops:

1. the strategy asks for a batch of candidates;
2. each is looked up in the run's archive (finished work is never redone),
   checked against the hard limits from its cheap objectives (a violating
   candidate is recorded as infeasible and costs no training), or trained;
3. the evaluations are told back to the strategy in ask order; the front,
   its hypervolume and the output files are updated.

A run lives in one folder: ``config.json``, ``archive.sqlite``, ``weights/``,
``front.csv``, ``front.json``, ``hypervolume.csv`` and ``pareto.png``.
A search trains at one input resolution (``--resolution``, default the data's
image size).  ``resume=True`` continues a killed run: strategies are deterministic given
their evaluations, so replaying them against the archive brings them back to
where they stopped without training anything twice.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from edgenas import __version__
from edgenas.archive import Archive, Evaluation
from edgenas.cost import Precision
from edgenas.data import PREPROCESSING
from edgenas.defaults import MIN_STEPS_DEFAULT
from edgenas.errors import SearchError
from edgenas.executors import make_executor
from edgenas.files import atomic_write_bytes, atomic_write_text
from edgenas.objectives import Constraints, HardwareModel, Objective, parse_objectives
from edgenas.pareto import pareto_front
from edgenas.strategies import SearchProblem, StrategySettings, get_strategy
from edgenas.strategies.base import WORST_ERROR_PCT
from edgenas.train import TrainConfig, TrainingBudget, at_chance, training_budget

__all__ = ["SearchConfig", "SearchResult", "pareto_front", "run_search", "write_outputs"]

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
    from edgenas.strategies import list_strategies

    return "; ".join(f"{s.name}: {s.description}" for s in list_strategies())


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a run (saved as ``config.json`` in the run folder).

    Each field is declared once, with :func:`setting`: the CLI flags of ``edgenas search``
    (:func:`edgenas.cli._add_search_command`) and the resume identity (:meth:`identity`) are derived from it.
    """

    data: str = setting("digits", "digits (the bundled default), npz:FILE, imagefolder:DIR or cifar10:DIR")
    problem: str | None = setting(
        None, "a tabular benchmark instead of training: NAS-Bench-201 cells, each evaluation a lookup of error and "
              "latency (objectives error,latency; see: edgenas problems list)", metavar="nb201:DATASET:DEVICE")
    problem_data: str | None = setting(
        None, "another benchmark file of the same layout (default: the shipped nb201_hw.json.gz)", metavar="FILE")
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
    workers: int = setting(2, "training processes", identity=False)
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
        from edgenas.strategies import get_strategy as _known_strategy

        if min(self.budget, self.workers, self.epochs, self.finetune_epochs) < 1 or self.resolved().population < 2:
            raise SearchError("--budget, --epochs, --finetune-epochs and --workers must be at least 1, --population at "
                              "least 2")
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
        """(training processes, torch threads each) on this machine: the cores shared among the workers."""
        cores = os.cpu_count() or 1
        workers = min(self.workers, cores)
        return workers, max(1, cores // workers)

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
                           flip=in_channels == 3)


@dataclass
class SearchResult:
    run_dir: Path
    front: list[Evaluation]
    hypervolume: float
    evaluations: int
    trained: int
    seconds: float
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ workers
_WORKER: dict = {}


def _init_worker(space_dict: dict, data: tuple, train_config: TrainConfig, in_channels: int, num_classes: int,
                 run_dir: str) -> None:
    import torch

    from edgenas.space import space_from_dict

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

    from edgenas.inherit import inherit_weights
    from edgenas.model import build_model
    from edgenas.train import load_weights, save_weights, train_candidate

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


def weights_path(run_dir: str | Path, weights: str) -> Path:
    """Where an evaluation's weights are: archives store them relative to the run folder."""
    path = Path(weights)
    return path if path.is_absolute() else Path(run_dir) / path


def _training_seed(arch_text: str, run_seed: int) -> int:
    return (zlib.crc32(arch_text.encode()) + 7919 * run_seed) % (2**31)


# -------------------------------------------------------------------- front
def hypervolume(front: Sequence[Evaluation], objectives: Sequence[Objective], reference: Sequence[float]) -> float:
    """pymoo's hypervolume of the front against the run's fixed reference point."""
    from pymoo.indicators.hv import HV

    if not front:
        return 0.0
    F = np.array([[e.objectives[o.value] for o in objectives] for e in front])
    F = F[np.all(F < np.asarray(reference), axis=1)]
    return float(HV(ref_point=np.asarray(reference, dtype=float))(F)) if len(F) else 0.0


# ----------------------------------------------------------------- outputs
def write_outputs(run_dir: Path, archive: Archive, objectives: Sequence[Objective], plot: bool = True,
                  evaluations: Sequence[Evaluation] | None = None) -> list[Evaluation]:
    """front.csv, front.json, hypervolume.csv and (optionally) pareto.png from the archive (``evaluations``: its
    records, where the caller has just read them)."""
    evaluations = archive.all() if evaluations is None else evaluations
    front = pareto_front(evaluations, objectives)
    columns = ["arch", "accuracy_pct", *[o.column for o in Objective], "train_seconds", "epochs", "weights"]
    rows = []
    for ev in front:
        row = {"arch": ev.arch, "accuracy_pct": None if ev.accuracy is None else round(100 * ev.accuracy, 3)}
        for o in Objective:
            value = ev.objectives.get(o.value)
            row[o.column] = None if value is None else float(f"{float(value):.9g}")  # significant digits: tiny latencies keep theirs
        row.update(train_seconds=round(ev.train_seconds, 2), epochs=ev.epochs, weights=ev.weights)
        rows.append(row)
    atomic_write_text(run_dir / "front.csv", _csv_text(columns, rows))
    atomic_write_text(run_dir / "front.json", json.dumps({"objectives": [o.value for o in objectives], "front": rows},
                                                        indent=1))
    history = archive.hypervolume_history()
    atomic_write_text(run_dir / "hypervolume.csv", _csv_text(
        ["step", "evaluations", "trained", "train_seconds", "epochs", "hypervolume", "front_size"], history))
    if plot:
        plot_front(run_dir / "pareto.png", evaluations, front, objectives)
    return front


def _csv_text(columns: Sequence[str], rows: Sequence[dict]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_front(path: Path, evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
               objectives: Sequence[Objective]) -> None:
    """Pairwise scatter of the objectives: every trained evaluation in grey, the front in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [e for e in evaluations if e.status == "ok"]
    pairs = [(i, j) for i in range(len(objectives)) for j in range(i + 1, len(objectives))]
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    for ax, (i, j) in zip(axes.flat, pairs):
        oi, oj = objectives[i], objectives[j]
        ax.scatter([e.objectives[oj.value] for e in ok], [e.objectives[oi.value] for e in ok], s=10, c="0.7",
                   label="evaluated")
        ax.scatter([e.objectives[oj.value] for e in front], [e.objectives[oi.value] for e in front], s=22, c="tab:red",
                   label="Pareto front")
        ax.set_xlabel(f"{oj.value} ({oj.unit})")
        ax.set_ylabel(f"{oi.value} ({oi.unit})")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{len(front)} front members of {len(ok)} successful evaluations")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


# --------------------------------------------------------------------- run
def _log_default(message: str) -> None:
    print(f"edgenas: {message}", file=sys.stderr)


def resolve_table(device, space, precision: Precision, in_channels: int, num_classes: int, table_path: str | None,
                  log: Callable[[str], None]):
    """The latency table for this search: given, shipped, local, or profiled now (local devices)."""
    from edgenas.profile import default_table_path, profile_device
    from edgenas.tables import LatencyTable, find_table, table_folders

    if table_path:
        return LatencyTable.load(table_path)
    for folder in table_folders():
        table = find_table(device.name, space.fingerprint, precision, in_channels, num_classes, folder=folder)
        if table is not None:
            log(f"using latency table {table.path}")
            return table
    if device.kind != "local":
        raise SearchError(
            f"no {precision.value} latency table of device '{device.name}' for this space and task; make one with: "
            f"edgenas profile --device {device.name} --space {space.name} --resolution "
            f"{' '.join(map(str, space.resolutions))} --in-channels {in_channels} --num-classes {num_classes} "
            f"--precision {precision.value}"
        )
    out = default_table_path(device, space, precision, in_channels, num_classes)
    log(f"no {precision.value} latency table of '{device.name}' for this space and task: profiling this machine "
        f"now (under a minute for small inputs), into {out}")
    return profile_device(device, space, precision, in_channels, num_classes, out, log=log)


def _reference_point(hardware: HardwareModel, objectives: Sequence[Objective], seed: int) -> list[float]:
    """A fixed reference point: error 100 %, hardware objectives 1.1 x their maximum over 20,000 random networks."""
    space = hardware.space
    xl, xu = space.bounds
    X = np.random.default_rng(seed).integers(xl, xu + 1, size=(20_000, space.n_var))
    values = hardware.evaluate(X)
    ref = []
    for o in objectives:
        ref.append(WORST_ERROR_PCT if o is Objective.ERROR else float(1.1 * values[o].max()))
    return ref


def _run_dir(config: SearchConfig, resume: bool) -> Path:
    """The run folder, checked: a new one must not hold a run; a resumed one must hold this run."""
    run_dir = Path(config.run_dir) if config.run_dir else Path("runs") / (
        _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        + f"-{config.problem.replace(':', '-') if config.problem else config.data.split(':')[0]}-{config.strategy}"
        + f"-s{config.seed}"
    )
    if run_dir.exists() and not run_dir.is_dir():
        raise SearchError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    archive_path = run_dir / "archive.sqlite"
    if resume:
        if not archive_path.is_file():
            raise SearchError(f"nothing to resume in {run_dir}: it has no archive.sqlite")
        with Archive(archive_path, readonly=True) as previous:
            saved_dict = previous.get_meta("config")
        if not isinstance(saved_dict, dict):
            raise SearchError(f"{run_dir}: its archive holds no run settings; it cannot be resumed (start a new run)")
        saved = SearchConfig.from_saved(saved_dict)
        different = [k for k in SearchConfig.identity() if getattr(saved, k) != getattr(config, k)]
        if different:
            raise SearchError(
                f"{run_dir} was started with other settings "
                f"({', '.join(f'{k}={getattr(saved, k)!r}' for k in different)}); "
                "resume with the same settings (only --budget, --time-budget and --workers may change)"
            )
    elif archive_path.exists():
        raise SearchError(f"{run_dir} already holds a run: add --resume to continue it, or choose another --run-dir")
    return run_dir


def _calibrate_for_run(table, device, config: SearchConfig, resumed_archive: Path | None, log):
    """The table as this run predicts with it: a resumed run keeps the calibration it started with (its objectives
    stay comparable); a new one re-times the table's anchors on local devices (or with drift_check=True) and uses
    the refitted calibration.  Returns (table, drift record or None)."""
    from edgenas.drift import checked_table

    if resumed_archive is not None:
        with Archive(resumed_archive, readonly=True) as previous:
            saved = previous.get_meta("table")
        if isinstance(saved, dict):
            if saved.get("sha256") and saved["sha256"] != table.measurements_hash:
                raise SearchError(f"{config.run_dir} was searched with table {saved.get('path')} (other measurements "
                                  f"than {table.path}); resume with that table (--table), or start a new run")
            drift = saved.get("drift")
            if drift:
                table = table.with_calibration(drift["latency_scale"], drift["overhead_ms"])
            return table, drift
        return table, None
    return checked_table(table, device, config.drift_check, log)


def _summary_notes(evaluations: Sequence[Evaluation], front: Sequence[Evaluation], majority_rate: float) -> list[str]:
    """What the user should know about a finished run: failures, networks at chance, a front of one."""
    notes = []
    trained = [e for e in evaluations if e.trained]
    failed = sum(1 for e in trained if e.status == "failed")
    chance = sum(1 for e in trained if e.at_chance)
    if failed:
        notes.append(f"{failed} candidate(s) failed to train; see their reason in the archive")
    if chance:
        notes.append(f"{chance} of {len(trained)} trained network(s) scored at chance (the majority-class rate "
                     f"{100 * majority_rate:.1f}%, within a binomial margin)" + (
                         ": none learned; train longer (--min-steps, --epochs), raise --lr, or add data"
                         if chance == len(trained) else ""))
    if len(front) == 1 and len(trained) > 1:
        why = ("accuracy did not separate the networks (they are at chance), so the cheapest one wins on every "
               "objective" if chance >= len(trained) - 1 else
               "it is at least as good as every other network on every objective")
        notes.append(f"front of 1: {front[0].arch} dominates the other {len(evaluations) - 1} evaluation(s): {why}")
    return notes


#: report.html is refreshed after a generation at most this often while a search runs (and always at its end).
REPORT_INTERVAL_S = 5.0

#: Generations in a row that may pass without a new evaluation, or without a network trained, before a search stops.
MAX_IDLE_GENERATIONS = 3
MAX_UNTRAINED_GENERATIONS = 20


def _check_limits_meetable(hardware: HardwareModel, constraints: Constraints, seed: int) -> None:
    """Refuse hard limits that no architecture meets, naming each broken limit and what the cheapest costs."""
    if not constraints.items():
        return
    space = hardware.space
    xl, xu = space.bounds
    rng = np.random.default_rng(seed + 1)
    X = np.vstack([xl[None, :], rng.integers(xl, xu + 1, size=(20_000, space.n_var))])
    values = hardware.evaluate(X)
    if hardware.feasible(values).any():
        return
    parts = [f"--{name.replace('_', '-')} {limit:g} (the cheapest of 20,001 architectures sampled, the smallest "
             f"included, needs {float(values[o].min()):.4g})"
             for o, (name, limit) in zip(constraints.objectives, constraints.items())]
    raise SearchError(f"no architecture of space '{space.name}' meets the hard limits: {'; '.join(parts)}; loosen "
                      "them or use a smaller space")


@dataclass
class _Setup:
    """What a search needs beyond its settings, made before the run folder is touched: the space and the cheap
    objectives, the accuracy source (:class:`Evaluator`), and what ``config.json`` records about them."""

    space: object
    hardware: object  # a CheapObjectives
    evaluator: Evaluator
    resolved: dict
    table_meta: dict | None = None
    unit: str = "net"


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


def _trained_setup(config: SearchConfig, objectives, constraints: Constraints, precision: Precision,
                   resumed_archive: Path | None, log) -> _Setup:
    """Data, space at the data's resolution, device, its (drift-checked) table, the hardware model, the trainer."""
    from edgenas.data import load_data
    from edgenas.devices import get_device
    from edgenas.predict import Predictor
    from edgenas.space import get_space

    data = load_data(config.data)
    for note in data.notes:
        log(note)
    space = get_space(config.space)
    # A search trains at one input resolution: --resolution, or the data's own image size up to the space's largest.
    resolution = config.resolution or min(data.resolution, max(space.resolutions))
    if config.resolution is None and resolution < data.resolution:
        log(f"images are {data.resolution}x{data.resolution}: resized to {resolution}x{resolution}, the largest "
            f"resolution of space '{space.name}' (choose another with --resolution)")
    space = space.with_choices(resolutions=[resolution])
    data = data.resized(resolution)
    split = data.split(config.val_fraction, config.seed)
    device = get_device(config.device)
    table = resolve_table(device, space, precision, data.in_channels, data.num_classes, config.table, log)
    table.check_device(device)
    if Objective.ENERGY in objectives and not table.has_energy:
        raise SearchError(f"objective(s) energy are not available: table {table.name} has no energy measurements "
                          "(its device has no energy source)")
    # Refuses another space or task before any timing; its op index serves the recalibrated predictor too.
    index = Predictor(table, space, data.in_channels, data.num_classes, precision=precision).index
    table, drift = _calibrate_for_run(table, device, config, resumed_archive, log)
    predictor = Predictor(table, space, data.in_channels, data.num_classes, precision=precision, index=index)
    hardware = HardwareModel(space, data.in_channels, data.num_classes, precision, predictor, constraints)
    budget = config.training_budget(len(split.train))
    if budget.epochs > config.epochs or budget.batch_size < config.batch_size:
        log(f"{len(split.train)} training images: batch {budget.batch_size}, {budget.epochs} epochs "
            f"({budget.steps(budget.epochs)} steps) per network trained from scratch, so that each takes at least "
            f"--min-steps {config.min_steps}")
    resolved = {
        "table": str(table.path), "table_sha256": table.measurements_hash, "drift": drift,
        "device": device.to_dict(), "data": {
            "name": data.name, "images": int(len(data.y)), "classes": list(data.classes), "in_channels": data.in_channels,
            "resolution": max(space.resolutions), "train": int(len(split.train)), "val": int(len(split.val)),
            "mean": split.mean.tolist(), "std": split.std.tolist(), "majority_rate": data.majority_rate,
            "preprocessing": PREPROCESSING},
        "training": {**budget.to_dict(), "augment": config.augment, "flip": data.in_channels == 3},
    }
    table_meta = {"path": str(table.path), "sha256": table.measurements_hash, "drift": drift}
    return _Setup(space, hardware, TrainingEvaluator(config, space, split, data, budget), resolved, table_meta)


def _tabular_setup(config: SearchConfig, objectives, constraints: Constraints, resumed_archive: Path | None,
                   log) -> _Setup:
    """A tabular benchmark problem: the cell space, latency lookups as the cheap objective, accuracy lookups."""
    from edgenas.nb201 import CellSpace, load_problem
    from edgenas.objectives import TabularObjectives

    extra = [o.value for o in objectives if o not in (Objective.ERROR, Objective.LATENCY)]
    if extra:
        raise SearchError(f"a tabular benchmark measures error and latency only, not {', '.join(extra)}; use "
                          "--objectives error,latency")
    problem = load_problem(config.problem, config.problem_data)
    if resumed_archive is not None:
        with Archive(resumed_archive, readonly=True) as previous:
            saved = previous.get_meta("table")
        if isinstance(saved, dict) and saved.get("sha256") not in (None, problem.data.sha256):
            raise SearchError(f"{config.run_dir} was searched on other benchmark data than {problem.data.path}; "
                              "resume with the same --problem-data, or start a new run")
    space = CellSpace()
    hardware = TabularObjectives(space, problem.latency_ms, constraints)
    log(f"tabular benchmark {problem.name} ({problem.data.path}): every evaluation is a lookup, no training")
    resolved = {"problem": {"name": problem.name, "dataset": problem.dataset, "device": problem.device,
                            "data": str(problem.data.path), "sha256": problem.data.sha256}}
    table_meta = {"path": str(problem.data.path), "sha256": problem.data.sha256, "drift": None}
    return _Setup(space, hardware, TabularEvaluator(problem, space), resolved, table_meta, unit="eval")


def run_search(
    config: SearchConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = _log_default,
    report: bool = True,
) -> SearchResult:
    """Run (or resume) a search; see the module docstring.  ``report`` refreshes ``report.html`` in the run folder
    after every generation (:mod:`edgenas.report`)."""
    config = config.resolved()
    objectives, constraints, precision = config.validate()
    run_dir = _run_dir(config, resume)
    archive_path = run_dir / "archive.sqlite"
    resumed_archive = archive_path if resume else None
    if config.problem:
        setup = _tabular_setup(config, objectives, constraints, resumed_archive, log)
    else:
        setup = _trained_setup(config, objectives, constraints, precision, resumed_archive, log)
    reference = _reference_point(setup.hardware, objectives, config.seed)
    _check_limits_meetable(setup.hardware, constraints, config.seed)
    problem = SearchProblem(setup.space, objectives, setup.hardware, batch_size=config.population)
    strategy = get_strategy(config.strategy, config.strategy_settings())
    strategy.setup(problem, config.seed)
    for note in strategy.notes:
        log(note)

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_run_dir(run_dir)
    try:
        if not resume and archive_path.exists():  # another search created it since the checks above
            raise SearchError(f"{run_dir} already holds a run: add --resume to continue it, or choose another --run-dir")
        return _search_locked(config, resume, progress, log, run_dir, archive_path, setup, objectives, constraints,
                              reference, strategy, report)
    finally:
        lock.close()  # releases the lock (the kernel also releases it if this process dies)


def _lock_run_dir(run_dir: Path):
    """An advisory lock on the run folder for the whole search: a second search on it is refused, not interleaved.
    A crashed search holds no lock (the kernel drops it with the process), so no lock goes stale."""
    import fcntl

    handle = (run_dir / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise SearchError(f"{run_dir} is in use by another edgenas search (process {holder}); wait for it to finish "
                          "or stop it, or choose another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _search_locked(config, resume, progress, log, run_dir, archive_path, setup: _Setup, objectives, constraints,
                   reference, strategy, report: bool = True) -> SearchResult:
    """The search itself, in a locked run folder (see :func:`run_search`)."""
    space, hardware, evaluator = setup.space, setup.hardware, setup.evaluator
    majority = evaluator.majority_rate
    archive = Archive(archive_path)
    _start_run(config, resume, run_dir, archive, setup, objectives, reference)
    if report:
        log(f"report, refreshed while the search runs: {run_dir / 'report.html'}")
    evaluator.open(run_dir)

    started = time.monotonic()
    elapsed_before = float(archive.get_meta("elapsed_seconds", 0.0))
    bar = _progress_bar(config.budget, archive, setup.unit) if progress else None
    notes: list[str] = []
    generation = idle = untrained = 0
    reported = -float("inf")  # when report.html was last refreshed
    told: set[str] = set()  # candidates told to the strategy in this session (a resume replays the others)
    try:
        while True:
            stalled = _stall_note(idle, untrained, space, archive)
            if stalled:
                notes.append(stalled)
                break
            before = archive.totals()
            trained = before["trained"]
            elapsed = elapsed_before + time.monotonic() - started
            if trained >= config.budget:
                break
            if config.time_budget_min is not None and elapsed >= 60 * config.time_budget_min:
                notes.append(f"stopped by the time budget of {config.time_budget_min:g} min")
                break
            candidates = strategy.ask()
            evaluations, jobs, known, G = _triage(candidates, archive, hardware, constraints, strategy.name)
            remaining = config.budget - trained
            if len(jobs) > remaining:
                jobs = jobs[:remaining]  # the budget ends inside this batch: train what it allows, then stop
            deadline = (started - elapsed_before + 60 * config.time_budget_min
                        if config.time_budget_min is not None else None)
            fresh, out_of_time = _evaluate(evaluator, jobs, archive, evaluations, G, strategy.name, bar, deadline)
            if out_of_time:
                notes.append(f"stopped by the time budget of {config.time_budget_min:g} min")
                break
            generation += 1
            after = archive.totals()
            texts = [str(c.arch) for c in candidates]
            replayed = any(t in known and t not in told for t in texts)  # served from an earlier session's archive
            idle = idle + 1 if all(t in told for t in texts) else 0
            untrained = untrained + 1 if after["trained"] == before["trained"] and not replayed else 0
            told.update(texts)
            ok = [e for e in fresh if e.status == "ok"]
            if ok and all(e.at_chance for e in ok):
                log(f"generation {generation}: all {len(ok)} trained network(s) scored at chance "
                    f"({100 * majority:.1f}% is the majority-class rate): train longer (--min-steps, --epochs), raise "
                    "--lr, or add data")
            if any(e is None for e in evaluations):
                break  # budget reached mid-batch: the strategy is not told a partial batch
            strategy.tell(candidates, evaluations)
            everything = archive.all()  # read once for the front, its hypervolume and the output files
            _record_front(archive, objectives, reference, everything)
            archive.set_meta("elapsed_seconds", elapsed_before + time.monotonic() - started)
            write_outputs(run_dir, archive, objectives, plot=False, evaluations=everything)
            if report and time.monotonic() - reported >= REPORT_INTERVAL_S:
                _refresh_report(run_dir, log)
                reported = time.monotonic()
            _show_progress(bar, archive, objectives)
    finally:
        evaluator.close()
        if bar is not None:
            bar.close()
        archive.set_meta("elapsed_seconds", elapsed_before + time.monotonic() - started)
        try:
            result = _finish(run_dir, archive, objectives, reference, report, log)
            result.notes = notes + _summary_notes(archive.all(), result.front, majority)
        finally:
            archive.close()
    return result


def _finish(run_dir: Path, archive: Archive, objectives, reference, report: bool, log) -> SearchResult:
    """The final front, its hypervolume (always recorded, also for a run shorter than one generation), the output
    files and the report."""
    hv = _record_front(archive, objectives, reference)
    front = write_outputs(run_dir, archive, objectives, plot=True)
    if report:
        _refresh_report(run_dir, log)
    totals = archive.totals()
    return SearchResult(run_dir, front, hv, totals["evaluations"], totals["trained"],
                        float(archive.get_meta("elapsed_seconds", 0.0)))


def _start_run(config: SearchConfig, resume: bool, run_dir: Path, archive: Archive, setup: _Setup, objectives,
               reference) -> None:
    """The run's identity in the archive (a new run) and its resolved settings in config.json."""
    space = setup.space
    resolved = {
        "config": asdict(config), "space": {**space.to_dict(), "fingerprint": space.fingerprint}, **setup.resolved,
        "objectives": [o.value for o in objectives], "reference_point": reference,
        "edgenas": __version__,
    }
    if not resume:  # the run's identity in one transaction: a crash leaves all of it or none
        archive.set_metas({"config": asdict(config), "elapsed_seconds": 0.0, "table": setup.table_meta})
    atomic_write_text(run_dir / "config.json", json.dumps(resolved, indent=1) + "\n")


def _evaluate(evaluator: Evaluator, jobs, archive: Archive, evaluations: list, G: np.ndarray, strategy_name: str,
              bar, deadline: float | None) -> tuple[list[Evaluation], bool]:
    """Run the jobs, recording each evaluation as it finishes (a kill loses nothing done); fills ``evaluations``.
    The time budget (``deadline`` on the monotonic clock) is checked between evaluations: the rest of the batch is
    then not started.  Returns (the new evaluations, whether the deadline passed)."""
    fresh = []
    for (i, text, hw, cand), r in evaluator.run(jobs, archive):
        error = WORST_ERROR_PCT if r["accuracy"] is None else 100.0 * (1.0 - r["accuracy"])
        evaluations[i] = archive.add(Evaluation(
            text, r["status"], {**hw, "error": error}, accuracy=r["accuracy"],
            violations=tuple(float(g) for g in G[i]), train_seconds=r["train_seconds"], epochs=r["epochs"],
            seed=r["seed"], weights=r["weights"], reason=r["reason"], strategy=strategy_name,
            parent=cand.parent, steps=r["steps"], at_chance=r["at_chance"]))
        fresh.append(evaluations[i])
        if bar is not None:
            bar.update(1)
        if deadline is not None and time.monotonic() >= deadline:
            return fresh, True
    return fresh, False


def _triage(candidates, archive: Archive, hardware, constraints: Constraints, strategy_name: str):
    """A batch sorted before any evaluation: finished work is served from the archive, a candidate that breaks a
    hard limit is recorded as infeasible (no training spent), the rest become jobs ``(i, text, hardware values,
    candidate)``.  Returns (evaluations with None for the jobs, jobs, the texts found in the archive, violations)."""
    X = np.stack([hardware.space.encode(c.arch) for c in candidates])
    cheap = hardware.evaluate(X)
    G = hardware.violations(cheap)
    evaluations: list[Evaluation | None] = [None] * len(candidates)
    jobs, known = [], set()
    for i, cand in enumerate(candidates):
        text = str(cand.arch)
        cached = archive.get(text)
        hw = {o.value: float(cheap[o][i]) for o in hardware.available}
        if cached is not None:
            known.add(text)
            evaluations[i] = cached
        elif G.shape[1] and np.any(G[i] > 0):
            broken = [f"{name.replace('_', '-')} {limit:g}" for (name, limit), g in zip(constraints.items(), G[i])
                      if g > 0]
            evaluations[i] = archive.add(Evaluation(
                text, "infeasible", {**hw, "error": WORST_ERROR_PCT}, violations=tuple(float(g) for g in G[i]),
                reason=f"exceeds --{', --'.join(broken)}", strategy=strategy_name, parent=cand.parent))
        else:
            jobs.append((i, text, hw, cand))
    return evaluations, jobs, known, G


def _stall_note(idle: int, untrained: int, space, archive: Archive) -> str | None:
    """Why a search that cannot make progress stops (None while it can)."""
    if idle >= MAX_IDLE_GENERATIONS:
        t = archive.totals()
        return (f"stopped: {idle} generations in a row proposed nothing new to evaluate; the space holds "
                f"{space.n_architectures():,} architectures and {t['evaluations']:,} were evaluated (the "
                "strategy has exhausted what it can reach)")
    if untrained >= MAX_UNTRAINED_GENERATIONS:
        return (f"stopped: {untrained} generations in a row trained nothing (every candidate broke a hard "
                "limit or was evaluated before); loosen the limits or use a smaller space")
    return None


def _progress_bar(budget: int, archive: Archive, unit: str):
    from tqdm import tqdm

    return tqdm(total=budget, initial=min(archive.totals()["trained"], budget), desc="search", unit=unit,
                file=sys.stderr, dynamic_ncols=True, disable=None)


def _show_progress(bar, archive: Archive, objectives) -> None:
    if bar is None:
        return
    history = archive.hypervolume_history()
    best = min((e.objectives["error"] for e in pareto_front(archive.all(), objectives)), default=float("nan"))
    bar.set_postfix_str(f"best error {best:.2f}%, front {history[-1]['front_size']}, HV {history[-1]['hypervolume']:.4g}")


def _refresh_report(run_dir: Path, log) -> None:
    """The run's report.html, rebuilt (a report that cannot be written is logged, and the search goes on)."""
    from edgenas.report import build_report

    try:
        build_report(run_dir)
    except (OSError, ValueError, SearchError) as exc:
        log(f"report.html not refreshed: {exc}")


def _record_front(archive: Archive, objectives: Sequence[Objective], reference: Sequence[float],
                  evaluations: Sequence[Evaluation] | None = None) -> float:
    """The hypervolume of the archive's front now, recorded in its history; returned."""
    front = pareto_front(archive.all() if evaluations is None else evaluations, objectives)
    hv = hypervolume(front, objectives, reference)
    archive.add_hypervolume(hv, len(front))
    return hv


def load_run(run_dir: str | Path) -> tuple[dict, list[Evaluation], list[Objective]]:
    """The resolved config, evaluations and objectives of a run folder."""
    run_dir = Path(run_dir)
    path = run_dir / "archive.sqlite"
    if not path.is_file():
        raise SearchError(f"{run_dir} is not a search run (no archive.sqlite)")
    with Archive(path, readonly=True) as archive:  # read-only: works on a read-only run, never changes it
        config = archive.get_meta("config")
        evaluations = archive.all()
    if not isinstance(config, dict) or not isinstance(config.get("objectives"), str):
        raise SearchError(f"{run_dir}: its archive holds no run settings; it is not a complete search run")
    resolved = {}
    if (run_dir / "config.json").is_file():
        try:
            resolved = json.loads((run_dir / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise SearchError(f"{run_dir}/config.json cannot be read ({exc}); restore it or re-run the search") from None
    return resolved or {"config": config}, evaluations, list(parse_objectives(config["objectives"]))

