"""What a search is about, built from its settings before the run folder is touched: the space, the cheap
objectives (a latency table's predictions or a benchmark's lookups), the accuracy source, a fixed hypervolume
reference point, and a check that the hard limits can be met at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenas.errors import SearchError
from edgenas.nn.data import PREPROCESSING
from edgenas.search.archive import Archive
from edgenas.search.config import SearchConfig
from edgenas.search.evaluators import Evaluator, SupernetEvaluator, TabularEvaluator, TrainingEvaluator
from edgenas.search.objectives import Constraints, HardwareModel, Objective
from edgenas.search.strategies.base import WORST_ERROR_PCT
from edgenas.space.cost import Precision

__all__ = ["RunSetup", "check_limits_meetable", "reference_point", "resolve_table", "setup_search"]


@dataclass
class RunSetup:
    """What a search needs beyond its settings, made before the run folder is touched: the space and the cheap
    objectives, the accuracy source (:class:`Evaluator`), and what ``config.json`` records about them."""

    space: object
    hardware: object  # a CheapObjectives
    evaluator: Evaluator
    resolved: dict
    table_meta: dict | None = None
    unit: str = "net"


def setup_search(config: SearchConfig, objectives, constraints: Constraints, precision: Precision,
                 resumed_archive: Path | None, log: Callable[[str], None]) -> RunSetup:
    """The search's space, cheap objectives and accuracy source: a tabular benchmark (``config.problem``) or a
    trained search (data, space, device and latency table)."""
    if config.problem:
        return _tabular_setup(config, objectives, constraints, resumed_archive, log)
    return _trained_setup(config, objectives, constraints, precision, resumed_archive, log)


def _trained_setup(config: SearchConfig, objectives, constraints: Constraints, precision: Precision,
                   resumed_archive: Path | None, log) -> RunSetup:
    """Data, space at the data's resolution, device, its (drift-checked) table, the hardware model, the trainer."""
    from edgenas.hardware.devices import get_device
    from edgenas.hardware.predict import Predictor
    from edgenas.nn.data import load_data
    from edgenas.space.mbconv import get_space

    data = load_data(config.data)
    for note in data.notes:
        log(note)
    space = get_space(config.space)
    supernet = _supernet_space(config, space) if config.supernet else None
    # A search trains at one input resolution: --resolution, or the data's own image size up to the space's largest.
    resolution = config.resolution or min(data.resolution, max(space.resolutions))
    if supernet is not None:
        space, resolution = supernet[1], max(supernet[1].resolutions)
    elif config.resolution is None and resolution < data.resolution:
        log(f"images are {data.resolution}x{data.resolution}: resized to {resolution}x{resolution}, the largest "
            f"resolution of space '{space.name}' (choose another with --resolution)")
    space = space if supernet is not None else space.with_choices(resolutions=[resolution])
    data = data.resized(resolution)
    # A supernet is measured on its own validation split (the images it never trained on).
    split_fraction, split_seed = ((supernet[0]["recipe"]["val_fraction"], supernet[0]["recipe"]["seed"])
                                  if supernet is not None else (config.val_fraction, config.seed))
    split = data.split(split_fraction, split_seed)
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
    if supernet is None and (budget.epochs > config.epochs or budget.batch_size < config.batch_size):
        log(f"{len(split.train)} training images: batch {budget.batch_size}, {budget.epochs} epochs "
            f"({budget.steps(budget.epochs)} steps) per network trained from scratch, so that each takes at least "
            f"--min-steps {config.min_steps}")
    resolved = {
        "table": str(table.path), "table_sha256": table.measurements_hash, "drift": drift,
        "device": device.to_dict(), "data": {
            "name": data.name, "images": int(len(data.y)), "classes": list(data.classes), "in_channels": data.in_channels,
            "resolution": max(space.resolutions), "train": int(len(split.train)), "val": int(len(split.val)),
            "mean": split.mean.tolist(), "std": split.std.tolist(), "majority_rate": data.majority_rate,
            "preprocessing": PREPROCESSING, "split": {"val_fraction": split_fraction, "seed": split_seed}},
        "training": {**budget.to_dict(), "augment": config.augment, "flip": data.in_channels == 3},
    }
    table_meta = {"path": str(table.path), "sha256": table.measurements_hash, "drift": drift}
    if supernet is not None:
        log(f"supernet {config.supernet}: every evaluation is a subnet's accuracy, no training")
        resolved["supernet"] = {"path": str(config.supernet), "epochs": supernet[0]["recipe"]["epochs"],
                                "seconds": supernet[0].get("seconds")}
        return RunSetup(space, hardware, SupernetEvaluator(config, data.majority_rate, len(split.val)), resolved,
                        table_meta, unit="subnet")
    return RunSetup(space, hardware, TrainingEvaluator(config, space, split, data, budget), resolved, table_meta)


def _supernet_space(config: SearchConfig, space):
    """(metadata, space) of the run's supernet, checked against the run's data and space."""
    from edgenas.nn.supernet import read_supernet

    meta, sn_space = read_supernet(config.supernet)
    if meta["data"] != config.data:
        raise SearchError(f"the supernet in {config.supernet} was trained on --data {meta['data']}, not "
                          f"{config.data}; search with --data {meta['data']}")
    if space.with_choices(resolutions=sn_space.resolutions).fingerprint != sn_space.fingerprint or (
            config.resolution is not None and [config.resolution] != list(sn_space.resolutions)):
        raise SearchError(f"the supernet in {config.supernet} holds space '{sn_space.name}' at resolution(s) "
                          f"{', '.join(map(str, sn_space.resolutions))}; search it with --space {sn_space.name} and "
                          "no other --resolution")
    return meta, sn_space


def _tabular_setup(config: SearchConfig, objectives, constraints: Constraints, resumed_archive: Path | None,
                   log) -> RunSetup:
    """A tabular benchmark problem: the cell space, latency lookups as the cheap objective, accuracy lookups."""
    from edgenas.search.objectives import TabularObjectives
    from edgenas.space.nb201 import CellSpace, load_problem

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
    return RunSetup(space, hardware, TabularEvaluator(problem, space), resolved, table_meta, unit="eval")


def resolve_table(device, space, precision: Precision, in_channels: int, num_classes: int, table_path: str | None,
                  log: Callable[[str], None]):
    """The latency table for this search: given, shipped, local, or profiled now (local devices)."""
    from edgenas.hardware.profile import default_table_path, profile_device
    from edgenas.hardware.tables import LatencyTable, find_table, table_folders

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


def _calibrate_for_run(table, device, config: SearchConfig, resumed_archive: Path | None, log):
    """The table as this run predicts with it: a resumed run keeps the calibration it started with (its objectives
    stay comparable); a new one re-times the table's anchors on local devices (or with drift_check=True) and uses
    the refitted calibration.  Returns (table, drift record or None)."""
    from edgenas.hardware.drift import checked_table

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


def reference_point(hardware: HardwareModel, objectives: Sequence[Objective], seed: int) -> list[float]:
    """A fixed reference point: error 100 %, hardware objectives 1.1 x their maximum over 20,000 random networks."""
    space = hardware.space
    xl, xu = space.bounds
    X = np.random.default_rng(seed).integers(xl, xu + 1, size=(20_000, space.n_var))
    values = hardware.evaluate(X)
    ref = []
    for o in objectives:
        ref.append(WORST_ERROR_PCT if o is Objective.ERROR else float(1.1 * values[o].max()))
    return ref


def check_limits_meetable(hardware: HardwareModel, constraints: Constraints, seed: int) -> None:
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
