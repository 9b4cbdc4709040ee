"""Predicting a network's latency and energy on a device from its lookup table.

Every op in a table was timed alone, so each timing includes the runtime's fixed
per-call overhead ``o`` (measured on a trivial model); a whole network pays that
overhead only once.  The prediction for a network made of ops ``i`` is::

    latency_ms = scale * (sum_i (t_i - o) + o)

where ``scale`` is the calibration fitted during profiling on whole networks
measured directly (the median of measured / uncalibrated).  Energy uses the
same form with its own overhead and scale.  Without the overhead correction, a
sum of per-op timings over-predicts small networks badly (tens of percent at
32x32, where each op takes only a few microseconds more than the call itself).

:meth:`Predictor.predict` is the one function that predicts an architecture;
:meth:`Predictor.predict_batch` computes the same for many encoded
architectures at once (vectorized).  Both finish with :meth:`Predictor._finish`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenas.cost import Precision
from edgenas.errors import TableError
from edgenas.genome import Architecture
from edgenas.ops import OpIndex, decompose
from edgenas.space import SearchSpace
from edgenas.tables import LatencyTable

__all__ = ["Prediction", "Predictor"]


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
        self._overhead_ms = float(table.overhead["latency_ms"])
        self._scale = float(table.calibration["latency_scale"])
        self._latency = np.array([table.entries[str(k)].latency_ms for k in self.index.keys]) - self._overhead_ms
        self.has_energy = table.has_energy
        if self.has_energy:
            self._energy_overhead = float(table.overhead.get("energy_mj") or 0.0)
            self._energy_scale = float(table.calibration.get("energy_scale") or 1.0)
            self._energy = np.array([table.entries[str(k)].energy_mj for k in self.index.keys]) - self._energy_overhead

    def _finish(self, latency_sum, energy_sum):
        latency = self._scale * (latency_sum + self._overhead_ms)
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
