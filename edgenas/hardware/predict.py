"""Predicting a network's latency and energy on a device from its lookup table.

Every op in a table was timed alone, so each timing includes the runtime's fixed
per-call overhead ``o`` (measured on a trivial model, with the same statistic
and in the same shuffled rounds as the ops); a whole network pays that
overhead only once.  The prediction for a network made of ops ``i`` is::

    latency_ms = scale * sum_i c_i + call_ms,    c_i = max(t_i - o, 0.05 * t_i)

``c_i`` is the op's own compute time, floored at 5% of its timing (an op that
times at or below the overhead, as noise allows on a loaded machine, can never
make a prediction shrink or go negative; ``tables show`` and ``validate``
count the floored ops).  ``scale`` and ``call_ms`` are the calibration: fitted
during profiling on whole networks measured directly (``call_ms`` = the
overhead, ``scale`` = the median of (measured - overhead) / sum c_i), and
refitted the same way by a recalibration on the device's drifted speed
(:mod:`edgenas.hardware.drift`).  Tables written before ``call_ms`` existed use
``scale * o``.  Energy uses the older form with its own overhead and scale.
Without the overhead correction, a sum of per-op timings over-predicts small
networks badly (tens of percent at 32x32, where each op takes only a few
microseconds more than the call itself).

:meth:`Predictor.predict` is the one function that predicts an architecture;
:meth:`Predictor.predict_batch` computes the same for many encoded
architectures at once (vectorized).  Both finish with :meth:`Predictor._finish`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenas.errors import TableError
from edgenas.hardware.tables import LatencyTable
from edgenas.space.cost import Precision
from edgenas.space.genome import Architecture
from edgenas.space.mbconv import SearchSpace
from edgenas.space.ops import OpIndex, decompose

__all__ = ["COMPUTE_FLOOR", "Prediction", "Predictor", "fit_calibration", "floored_ops", "op_compute_ms"]

#: An op's own time is its timing less the per-call overhead, never below this share of its timing.
COMPUTE_FLOOR = 0.05


def op_compute_ms(latency_ms, overhead_ms: float) -> np.ndarray:
    """Each op's own compute time: its timing less the call overhead, floored at ``COMPUTE_FLOOR`` of its timing."""
    t = np.asarray(latency_ms, dtype=float)
    return np.maximum(t - overhead_ms, COMPUTE_FLOOR * t)


def floored_ops(table: LatencyTable) -> int:
    """How many of the table's ops time so close to (or below) the overhead that their compute time is floored."""
    t = np.array([e.latency_ms for e in table.entries.values()])
    return int(np.sum(t - float(table.overhead.latency_ms) < COMPUTE_FLOOR * t))


def fit_calibration(compute_sums, measured_ms, overhead_ms: float) -> tuple[float, float]:
    """(scale, call_ms) from whole networks measured directly: call_ms = the overhead, scale = the median of
    (measured - overhead) / sum of compute times.  The one fit used by profiling and by recalibration."""
    compute_sums, measured_ms = np.asarray(compute_sums, dtype=float), np.asarray(measured_ms, dtype=float)
    if not len(measured_ms):
        return 1.0, float(overhead_ms)
    ratios = np.maximum(measured_ms - overhead_ms, COMPUTE_FLOOR * measured_ms) / np.maximum(compute_sums, 1e-12)
    return float(np.median(ratios)), float(overhead_ms)


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    energy_mj: float | None


class Predictor:
    """Latency (and energy) of architectures of ``space`` on the table's device."""

    def __init__(
        self,
        table: LatencyTable,
        space: SearchSpace,
        in_channels: int,
        num_classes: int,
        precision: Precision | str | None = None,
        index: OpIndex | None = None,
    ) -> None:
        table.check_compatible(space.name, space.fingerprint, precision or table.precision)
        self.table, self.space = table, space
        self.in_channels, self.num_classes = in_channels, num_classes
        self.index = index if index is not None else OpIndex(space, in_channels, num_classes)
        missing = [k for k in self.index.keys if str(k) not in table.entries]
        if missing:
            task = table.task
            raise TableError(
                f"table {table.name} has no entry for op {missing[0]} ({len(missing)} of {len(self.index)} ops "
                f"missing); it was profiled for {task['in_channels']} input channel(s) and {task['num_classes']} "
                f"classes, this search has {in_channels} and {num_classes}: profile the device for this task"
            )
        overhead_ms = float(table.overhead.latency_ms)
        self._scale = float(table.calibration.latency_scale)
        self._call_ms = table.call_overhead_ms
        self._latency = op_compute_ms([table.entries[str(k)].latency_ms for k in self.index.keys], overhead_ms)
        self.has_energy = table.has_energy
        if self.has_energy:
            self._energy_overhead = float(table.overhead.energy_mj or 0.0)
            self._energy_scale = float(table.calibration.energy_scale or 1.0)
            self._energy = op_compute_ms([table.entries[str(k)].energy_mj for k in self.index.keys],
                                         self._energy_overhead)

    def compute_sum(self, arch: Architecture) -> float:
        """Sum of the op compute times of ``arch`` (ms), before calibration."""
        ids = [self.index.id_of(k) for k in decompose(self.space, arch, self.in_channels, self.num_classes)]
        return float(self._latency[ids].sum())

    def _finish(self, latency_sum, energy_sum):
        latency = self._scale * latency_sum + self._call_ms
        energy = None if energy_sum is None else self._energy_scale * (energy_sum + self._energy_overhead)
        return latency, energy

    def predict(self, arch: Architecture) -> Prediction:
        """Predicted latency (ms) and energy (mJ, or None) of one architecture."""
        ids = [self.index.id_of(k) for k in decompose(self.space, arch, self.in_channels, self.num_classes)]
        latency, energy = self._finish(
            float(self._latency[ids].sum()), float(self._energy[ids].sum()) if self.has_energy else None
        )
        return Prediction(float(latency), None if energy is None else float(energy))

    def predict_batch(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """``latency_ms`` (and ``energy_mj`` where the table has energy) for each encoded row of ``X``."""
        sums = {"latency": self._latency}
        if self.has_energy:
            sums["energy"] = self._energy
        r = self.index.reduce(X, sums=sums)
        latency, energy = self._finish(r["latency"], r.get("energy"))
        out = {"latency_ms": latency}
        if energy is not None:
            out["energy_mj"] = energy
        return out
