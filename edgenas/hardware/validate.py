"""Checking a table against reality: predicted vs directly measured whole networks.

``validate_table`` samples random architectures of the table's space (held out:
the calibration networks come from another seed stream), measures each whole
network on the table's device twice, in two independent passes, and compares
the prediction of :class:`~edgenas.hardware.predict.Predictor` with the measurement
(the median over both passes).  The agreement between the two passes is the
noise ceiling: no predictor can agree with a measurement better than two
measurements agree with each other.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from edgenas.hardware.devices import Device, device_from_dict
from edgenas.hardware.predict import Predictor, floored_ops
from edgenas.hardware.profile import MeasurementSettings, ModelSpec, latency_statistic, measure
from edgenas.hardware.tables import LatencyTable

__all__ = ["ValidationReport", "host_changes", "validate_table", "within_tolerance"]


def within_tolerance(ratio: np.ndarray, tolerance: float = 0.10) -> float:
    """The share of predicted/measured ratios within +-``tolerance`` of 1."""
    return float(np.mean(np.abs(ratio - 1) <= tolerance))


def _distinct_archs(space, samples: int, seed: int, table_name: str) -> list:
    """Up to ``samples`` distinct random architectures (bounded: a small space may hold fewer than asked for)."""
    rng = np.random.default_rng(seed)
    archs = []
    for _ in range(50 * samples):
        if len(archs) == samples:
            break
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)
    if len(archs) < 2:
        from edgenas.errors import TableError

        raise TableError(f"the space of table {table_name} yields fewer than 2 distinct architectures to validate on")
    return archs


def _measure_twice(device, space, specs, table, base: MeasurementSettings, quiet: bool) -> list[dict]:
    """Two independent measurement passes over the same model files (the second in a new session)."""
    task = table.task
    passes = []
    with tempfile.TemporaryDirectory(prefix="edgenas-validate-") as tmp:
        models = Path(tmp) / "pass0" / "models"
        for p in range(2):
            workdir = Path(tmp) / f"pass{p}"
            if p == 1:
                (workdir / "models").parent.mkdir(parents=True, exist_ok=True)
                (workdir / "models").symlink_to(models, target_is_directory=True)
            passes.append(
                measure(device, space, specs, table.precision, task["in_channels"], task["num_classes"],
                        replace(base, seed=base.seed + 100 * (p + 1)), workdir, quiet=quiet)
            )
    return passes


@dataclass(frozen=True)
class ValidationReport:
    """How well a table predicts whole networks measured on its device (``edgenas tables validate``).  Ratios are
    predicted / measured; ``noise_*`` compare the two measurements of each network with each other (the ceiling no
    table can beat); ``*_drift_corrected`` scale predictions by how much faster or slower the device runs now than
    when it was profiled (its anchors timed again, ``speed_ratio``)."""

    table: str
    device: str
    precision: str
    space: str
    resolutions: list
    samples: int
    seed: int
    within_10pct: float
    mape_pct: float
    kendall_tau: float
    bias_pct: float
    floored_ops: int
    noise_within_10pct: float
    noise_mape_pct: float
    speed_ratio: float | None
    within_10pct_drift_corrected: float | None
    mape_pct_drift_corrected: float | None
    bias_pct_drift_corrected: float | None
    measured_ms: dict
    architectures: list
    host_changes: list = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "host_changes": list(self.host_changes)}


#: What the agent reports that, changed since profiling, makes a table describe another setup.
HOST_KEYS = ("machine", "cpu", "python", "numpy", "runtime_version", "cpu_count")


def host_changes(then: dict | None, now: dict | None) -> list[str]:
    """``key: then -> now`` for each of :data:`HOST_KEYS` the device reports differently now than at profiling."""
    if not then or not now:
        return []
    return [f"{k}: {then.get(k)} -> {now.get(k)}" for k in HOST_KEYS if k in then and then.get(k) != now.get(k)]


def validate_table(
    table: LatencyTable,
    samples: int = 30,
    seed: int = 1,
    device: Device | None = None,
    settings: MeasurementSettings | None = None,
    quiet: bool = False,
) -> ValidationReport:
    """Fidelity figures of ``table`` on ``samples`` random architectures (see the module docstring)."""
    space = table.search_space()
    device = device or device_from_dict(table.device, f"table {table.name}: device")
    task = table.task
    predictor = Predictor(table, space, task["in_channels"], task["num_classes"])
    archs = _distinct_archs(space, samples, seed, table.name)
    samples = len(archs)
    from edgenas.hardware.opmodels import MODEL_SUFFIX

    suffix = MODEL_SUFFIX[device.runtime]
    specs = [ModelSpec(f"net:{a}", f"net{i:03d}{suffix}", arch=a) for i, a in enumerate(archs)]
    anchors = [(space.parse(n["arch"]), n["measured_ms"]) for n in table.calibration.networks]
    specs += [ModelSpec(f"anchor:{a}", f"anchor{i:03d}{suffix}", arch=a) for i, (a, _) in enumerate(anchors)]
    base = settings or MeasurementSettings(
        warmup_runs=int(table.measurement.get("warmup_runs", 5)),
        rounds=int(table.measurement.get("rounds", 5)),
        runs_per_round=table.measurement.get("runs_per_round"),
    )
    passes = _measure_twice(device, space, specs, table, base, quiet)

    def both(mid: str) -> float:
        return latency_statistic(passes[0]["results"][mid]["rounds_ms"] + passes[1]["results"][mid]["rounds_ms"])

    nets = specs[: len(archs)]
    a = np.array([latency_statistic(passes[0]["results"][s.id]["rounds_ms"]) for s in nets])
    b = np.array([latency_statistic(passes[1]["results"][s.id]["rounds_ms"]) for s in nets])
    measured = np.array([both(s.id) for s in nets])
    predicted = np.array([predictor.predict(arch).latency_ms for arch in archs])
    ratio = predicted / measured
    tau = kendalltau(predicted, measured).statistic
    speed = float(np.median([both(f"anchor:{arch}") / then for arch, then in anchors])) if anchors else None
    corrected = ratio * speed if speed is not None else None
    return ValidationReport(
        table=table.name, device=device.name, precision=table.precision.value, space=space.name,
        resolutions=list(space.resolutions), samples=samples, seed=seed,
        within_10pct=within_tolerance(ratio), mape_pct=float(np.mean(np.abs(ratio - 1)) * 100), kendall_tau=float(tau),
        bias_pct=float(np.median(ratio - 1) * 100), floored_ops=floored_ops(table),
        noise_within_10pct=within_tolerance(a / b), noise_mape_pct=float(np.mean(np.abs(a / b - 1)) * 100),
        speed_ratio=speed,
        within_10pct_drift_corrected=within_tolerance(corrected) if corrected is not None else None,
        mape_pct_drift_corrected=float(np.mean(np.abs(corrected - 1)) * 100) if corrected is not None else None,
        bias_pct_drift_corrected=float(np.median(corrected - 1) * 100) if corrected is not None else None,
        measured_ms={"min": float(measured.min()), "median": float(np.median(measured)), "max": float(measured.max())},
        architectures=[{"arch": str(arch), "predicted_ms": float(p), "measured_ms": float(m)}
                       for arch, p, m in zip(archs, predicted, measured)],
        host_changes=host_changes(table.host, passes[0].get("host")),
    )
