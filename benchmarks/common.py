"""Shared by the search benchmarks: run strategies interleaved over seeds, score runs on one reference point."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgenas.search.archive import Archive, Evaluation
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search
from edgenas.search.objectives import Objective
from edgenas.search.pareto import hypervolume, pareto_front


def run_strategies(configs: Callable[[str, int, str], SearchConfig], strategies: Sequence[str],
                   seeds: Sequence[int]) -> dict[tuple[str, int], dict]:
    """Run every (strategy, seed), interleaved so machine drift hits every strategy alike.

    ``configs(strategy, seed, run_dir)`` gives the run's config.  Returns per run
    its evaluations in archive order, wall seconds, reference point and front size.
    """
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for name in strategies:
                config = configs(name, seed, str(Path(tmp) / f"{name}-{seed}"))
                start = time.perf_counter()
                result = run_search(config, progress=False, log=lambda m: None)
                with Archive(Path(config.run_dir) / "archive.sqlite") as archive:
                    evaluations = archive.all()
                resolved = json.loads((Path(config.run_dir) / "config.json").read_text())
                runs[(name, seed)] = {"evaluations": evaluations, "seconds": time.perf_counter() - start,
                                      "reference": resolved["reference_point"], "front": len(result.front)}
                train_s = sum(e.train_seconds for e in evaluations)
                epochs = sum(e.epochs for e in evaluations if e.trained)
                print(f"{name:9s} seed {seed}: {result.trained} trained ({epochs} epochs, {train_s:.0f} s of training), "
                      f"front {len(result.front)}, {runs[(name, seed)]['seconds']:.0f} s", flush=True)
    return runs


def shared_reference(runs: dict) -> list[float]:
    """One reference point for all runs: the element-wise maximum of the runs' own reference points."""
    return np.max([r["reference"] for r in runs.values()], axis=0).tolist()


def compute_curve(evaluations: Sequence[Evaluation], objectives: Sequence[Objective],
                  reference: Sequence[float]) -> list[dict]:
    """Hypervolume after each trained network, against cumulative training seconds and epochs."""
    curve, seconds, epochs, trained = [], 0.0, 0, 0
    for k, e in enumerate(evaluations):
        if not e.trained:
            continue
        seconds += e.train_seconds
        epochs += e.epochs
        trained += 1
        hv = hypervolume(pareto_front(evaluations[: k + 1], objectives), objectives, reference)
        curve.append({"trained": trained, "train_seconds": round(seconds, 3), "epochs": epochs, "hypervolume": hv})
    return curve


def first_reaching(curve: Sequence[dict], target: float) -> dict | None:
    """The first point of a curve whose hypervolume reaches ``target`` (None if it never does)."""
    return next((p for p in curve if p["hypervolume"] >= target * (1 - 1e-12)), None)
