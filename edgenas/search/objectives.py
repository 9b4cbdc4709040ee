"""Objectives and hard constraints of a search.

All objectives are minimised and reported in natural units:

| objective | unit | source |
|---|---|---|
| ``error`` | % (100 - top-1 accuracy) | training on the data |
| ``latency`` | ms | the device's latency table (:class:`~edgenas.hardware.predict.Predictor`) |
| ``energy`` | mJ | the device's table, where the device measures energy |
| ``memory`` | KiB | analytic peak inference memory at the export precision |
| ``size`` | KiB | analytic model size at the export precision |

The hardware objectives need no training: :class:`HardwareModel` computes them
for whole batches of encoded architectures at once, and the hard limits
(``--max-latency-ms`` ...) reject candidates before any training is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgenas.errors import SearchError
from edgenas.hardware.predict import Predictor
from edgenas.space.cost import CostModel, Precision
from edgenas.space.mbconv import SearchSpace
from edgenas.space.ops import OpIndex

__all__ = ["CheapObjectives", "Constraints", "HardwareModel", "Objective", "TabularObjectives", "parse_objectives"]


class Objective(str, Enum):
    ERROR = "error"
    LATENCY = "latency"
    ENERGY = "energy"
    MEMORY = "memory"
    SIZE = "size"

    @property
    def unit(self) -> str:
        return {"error": "%", "latency": "ms", "energy": "mJ", "memory": "KiB", "size": "KiB"}[self.value]

    @property
    def column(self) -> str:
        """Column name in archives and front files, with the unit in the name."""
        return {"error": "error_pct", "latency": "latency_ms", "energy": "energy_mj",
                "memory": "memory_kb", "size": "size_kb"}[self.value]


HARDWARE = (Objective.LATENCY, Objective.ENERGY, Objective.MEMORY, Objective.SIZE)


def parse_objectives(text: str) -> tuple[Objective, ...]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    valid = ", ".join(o.value for o in Objective)
    out = []
    for name in names:
        try:
            objective = Objective(name)
        except ValueError:
            raise SearchError(f"unknown objective '{name}'; choose from {valid}") from None
        if objective in out:
            raise SearchError(f"objective '{name}' is given twice")
        out.append(objective)
    if len(out) < 2:
        raise SearchError(f"a multi-objective search needs at least two objectives, e.g. error,latency (from {valid})")
    return tuple(out)


@dataclass(frozen=True)
class Constraints:
    """Hard limits; ``None`` means no limit."""

    max_latency_ms: float | None = None
    max_energy_mj: float | None = None
    max_memory_kb: float | None = None
    max_size_kb: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.items():
            if not value > 0:
                raise SearchError(f"--{name.replace('_', '-')} must be positive, got {value}")

    def items(self) -> list[tuple[str, float]]:
        return [(k, v) for k, v in vars(self).items() if v is not None]

    @property
    def objectives(self) -> list[Objective]:
        return [{"max_latency_ms": Objective.LATENCY, "max_energy_mj": Objective.ENERGY,
                 "max_memory_kb": Objective.MEMORY, "max_size_kb": Objective.SIZE}[k] for k, _ in self.items()]


class CheapObjectives:
    """What strategies and the search loop ask of the objectives that need no training: ``space``,
    ``constraints``, ``available`` objectives and ``evaluate(X)`` (natural units, vectorized); violations and
    feasibility follow from them.  :class:`HardwareModel` (tables and the cost model) and the tabular benchmark's
    lookup (:class:`edgenas.space.nb201.TabularProblem`) implement it."""

    space: object
    constraints: Constraints
    available: tuple[Objective, ...]

    def evaluate(self, X: np.ndarray) -> dict[Objective, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def violations(self, values: dict[Objective, np.ndarray]) -> np.ndarray:
        """N x n_constraints array, value / limit - 1 (> 0 means violated); N x 0 without limits."""
        n = len(next(iter(values.values())))
        cols = [values[o] / limit - 1 for o, (_, limit) in zip(self.constraints.objectives, self.constraints.items())]
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    def feasible(self, values: dict[Objective, np.ndarray]) -> np.ndarray:
        """N booleans: within every hard limit (all True without limits)."""
        return np.all(self.violations(values) <= 0, axis=1)


class TabularObjectives(CheapObjectives):
    """Latency of a tabular benchmark (a lookup per architecture) as the cheap objective."""

    def __init__(self, space, latency_ms, constraints: Constraints = Constraints()) -> None:
        self.space, self.latency_ms, self.constraints = space, latency_ms, constraints
        unsupported = [name for name, _ in constraints.items() if name != "max_latency_ms"]
        if unsupported:
            raise SearchError(f"a tabular benchmark measures latency only: --{unsupported[0].replace('_', '-')} "
                              "cannot be used (--max-latency-ms can)")
        self.available = (Objective.LATENCY,)

    def evaluate(self, X: np.ndarray) -> dict[Objective, np.ndarray]:
        return {Objective.LATENCY: self.latency_ms(np.atleast_2d(np.asarray(X)).astype(np.int64))}


class HardwareModel(CheapObjectives):
    """Hardware objectives and constraint violations of encoded architectures, vectorized."""

    def __init__(
        self,
        space: SearchSpace,
        in_channels: int,
        num_classes: int,
        precision: Precision | str,
        predictor: Predictor | None,
        constraints: Constraints = Constraints(),
    ) -> None:
        self.space = space
        self.precision = Precision(precision)
        self.index = predictor.index if predictor is not None else OpIndex(space, in_channels, num_classes)
        self.cost = CostModel(space, in_channels, num_classes, index=self.index)
        self.predictor = predictor
        self.constraints = constraints
        needed = set(constraints.objectives)
        if Objective.LATENCY in needed and predictor is None:
            raise SearchError("a latency limit needs a latency table for the device")
        if Objective.ENERGY in needed and not (predictor is not None and predictor.has_energy):
            raise SearchError("an energy limit needs a table with energy measurements; this device's table has none")

    @property
    def available(self) -> tuple[Objective, ...]:
        out = [Objective.MEMORY, Objective.SIZE]
        if self.predictor is not None:
            out.insert(0, Objective.LATENCY)
            if self.predictor.has_energy:
                out.insert(1, Objective.ENERGY)
        return tuple(out)

    def evaluate(self, X: np.ndarray) -> dict[Objective, np.ndarray]:
        """Hardware objectives (natural units) for each encoded row."""
        X = np.atleast_2d(np.asarray(X)).astype(np.int64)
        costs = self.cost.evaluate(X, self.precision)
        out = {Objective.MEMORY: costs["peak_memory_kb"], Objective.SIZE: costs["size_kb"]}
        if self.predictor is not None:
            pred = self.predictor.predict_batch(X)
            out[Objective.LATENCY] = pred["latency_ms"]
            if "energy_mj" in pred:
                out[Objective.ENERGY] = pred["energy_mj"]
        return out
