"""Tables that stay true: re-time a table's anchor networks on the device now and refit its calibration.

A device's speed drifts: thermal throttling, governors, background load, a
shared machine.  A table profiled on one day over-predicted by 16-32% on the
next on this very machine.  Every table carries *anchors*: the whole networks
timed directly during profiling (``calibration.networks``).  :func:`check_drift`
builds them again (from the content-addressed model cache, so usually without
any conversion), times them with the per-call overhead model in shuffled
rounds on the device, and refits ``scale`` and ``call_ms`` with the same fit as
profiling (:func:`edgenas.hardware.predict.fit_calibration`).  The speed ratio is the
median of (now / at profiling) over the anchors: above 1 the device runs slower
than when the table was made.

- :func:`check_drift` returns a :class:`DriftCheck` whose :meth:`~DriftCheck.apply`
  gives the table with the refitted calibration, for one run (``edgenas search``,
  ``export`` and ``verify`` do this on local devices before use);
- :func:`recalibrate_table` writes the refit into the table file, atomically,
  keeping each earlier calibration in ``calibration.history``
  (``edgenas tables recalibrate``).
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgenas.errors import TableError
from edgenas.hardware.devices import Device, device_from_dict
from edgenas.hardware.tables import LatencyTable

__all__ = ["DRIFT_WARN", "DriftCheck", "check_drift", "checked_table", "recalibrate_table", "recalibrated_table"]

#: A speed ratio further than this from 1 is worth a warning.
DRIFT_WARN = 0.10
#: Timing passes of a drift check at most (more only while the device looks slower than at profiling).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class DriftCheck:
    """The outcome of re-timing a table's anchors now."""

    table: str
    device: str
    speed_ratio: float  # median over the anchors of (latency now / latency at profiling); > 1: slower now
    latency_scale: float  # refitted
    overhead_ms: float  # the per-call overhead measured now
    previous_scale: float
    previous_overhead_ms: float
    anchors: list[dict] = field(default_factory=list)  # {arch, then_ms, now_ms}
    seconds: float = 0.0
    checked: str = ""

    @property
    def drifted(self) -> bool:
        return abs(self.speed_ratio - 1) > DRIFT_WARN

    def describe(self) -> str:
        way = "slower" if self.speed_ratio > 1 else "faster"
        return (f"{self.device} runs {abs(self.speed_ratio - 1) * 100:.0f}% {way} than when table {self.table} was "
                f"profiled (median over {len(self.anchors)} anchor networks, {self.seconds:.1f} s); calibration scale "
                f"{self.previous_scale:.3f} -> {self.latency_scale:.3f}, call overhead "
                f"{self.previous_overhead_ms * 1e3:.1f} -> {self.overhead_ms * 1e3:.1f} us")

    def record(self) -> dict:
        """What a run, a bundle or the table's history keeps of this check."""
        return {k: v for k, v in asdict(self).items() if k != "anchors"} | {"anchors": len(self.anchors)}

    def apply(self, table: LatencyTable) -> LatencyTable:
        return table.with_calibration(self.latency_scale, self.overhead_ms)


def check_drift(table: LatencyTable, device: Device | None = None, rounds: int = 3, seed: int = 0,
                quiet: bool = True) -> DriftCheck:
    """Re-time the table's anchors and overhead model on ``device`` (default: the table's) and refit."""
    from edgenas.hardware.opmodels import MODEL_SUFFIX
    from edgenas.hardware.predict import Predictor, fit_calibration
    from edgenas.hardware.profile import OVERHEAD_OP, MeasurementSettings, ModelSpec, latency_statistic, measure

    started = time.monotonic()
    device = device or device_from_dict(table.device, f"table {table.name}: device")
    networks = table.calibration.networks or []
    if not networks:
        raise TableError(f"table {table.name} has no anchor networks (calibration.networks): profile the device "
                         "again with edgenas profile")
    space = table.search_space()
    task = table.task
    anchors = [space.parse(n["arch"]) for n in networks]
    suffix = MODEL_SUFFIX[device.runtime]
    specs = [ModelSpec("overhead", f"overhead{suffix}", op=OVERHEAD_OP)]
    specs += [ModelSpec(f"anchor:{a}", f"anchor{i:03d}{suffix}", arch=a) for i, a in enumerate(anchors)]
    settings = MeasurementSettings(
        warmup_runs=int(table.measurement.get("warmup_runs", 5)), rounds=rounds,
        runs_per_round=int(table.measurement.get("runs_per_round") or 20), seed=seed + 7)
    then = np.array([float(n["measured_ms"]) for n in networks])
    overhead_now, now = np.inf, np.full(len(anchors), np.inf)
    with tempfile.TemporaryDirectory(prefix="edgenas-drift-") as tmp:
        # Interference on a shared device only ever slows runs down: when the anchors look slower than at
        # profiling, time them again (at most twice more) and keep each one's fastest, so a short burst of
        # other work is not mistaken for drift.
        for attempt in range(MAX_ATTEMPTS):
            measured = measure(device, space, specs, table.precision, task["in_channels"], task["num_classes"],
                               replace(settings, seed=settings.seed + attempt), Path(tmp) / f"try{attempt}",
                               quiet=quiet)
            results = measured["results"]
            overhead_now = min(overhead_now, latency_statistic(results["overhead"]["rounds_ms"]))
            now = np.minimum(now, [latency_statistic(results[f"anchor:{a}"]["rounds_ms"]) for a in anchors])
            if np.median(now / then) <= 1 + DRIFT_WARN:
                break
    predictor = Predictor(table, space, task["in_channels"], task["num_classes"])
    compute = np.array([predictor.compute_sum(a) for a in anchors])
    scale, call_ms = fit_calibration(compute, now, overhead_now)
    return DriftCheck(
        table=table.name, device=device.name, speed_ratio=float(np.median(now / then)), latency_scale=scale,
        overhead_ms=call_ms, previous_scale=float(table.calibration.latency_scale),
        previous_overhead_ms=table.call_overhead_ms,
        anchors=[{"arch": str(a), "then_ms": float(t), "now_ms": float(n)} for a, t, n in zip(anchors, then, now)],
        seconds=round(time.monotonic() - started, 2),
        checked=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )


def recalibrate_table(path: str | Path, device: Device | None = None, rounds: int = 5, ops: bool = True,
                      quiet: bool = True) -> tuple[LatencyTable, DriftCheck]:
    """Bring the table at ``path`` up to date with the device now and write it back atomically, the previous
    calibration kept in ``calibration.history``.

    ``ops=True`` (the default) re-times every op, the overhead model and the anchors together in shuffled rounds
    (a fresh profile with the table's own settings and anchors; models come from the cache, so it takes seconds
    for the shipped tables): a device whose ops drifted unevenly is measured again, not only rescaled.
    ``ops=False`` re-times the anchors and the overhead only and refits the calibration.
    """
    from dataclasses import replace

    from edgenas.hardware.profile import MeasurementSettings, profile_device

    path = Path(path)
    table = LatencyTable.load(path)
    device = device or device_from_dict(table.device, f"table {table.name}: device")
    if not ops:
        check = check_drift(table, device, rounds=rounds, quiet=quiet)
        fresh = table.with_calibration(check.latency_scale, check.overhead_ms)
    else:
        started = time.monotonic()
        m = table.measurement
        settings = MeasurementSettings(
            warmup_runs=int(m.get("warmup_runs", 5)), rounds=rounds, runs_per_round=m.get("runs_per_round"),
            calibration_networks=len(table.calibration.networks or []) or 8, seed=int(m.get("seed", 0)))
        task = table.task
        with tempfile.TemporaryDirectory(prefix="edgenas-recalibrate-") as tmp:
            fresh = profile_device(device, table.search_space(), table.precision, task["in_channels"],
                                   task["num_classes"], Path(tmp) / path.name, settings, quiet=quiet)
        then = {n["arch"]: float(n["measured_ms"]) for n in table.calibration.networks or []}
        pairs = [(then[n["arch"]], float(n["measured_ms"])) for n in fresh.calibration.networks if n["arch"] in then]
        check = DriftCheck(
            table=table.name, device=device.name,
            speed_ratio=float(np.median([now / was for was, now in pairs])) if pairs else 1.0,
            latency_scale=float(fresh.calibration.latency_scale), overhead_ms=fresh.call_overhead_ms,
            previous_scale=float(table.calibration.latency_scale), previous_overhead_ms=table.call_overhead_ms,
            anchors=[{"then_ms": was, "now_ms": now} for was, now in pairs],
            seconds=round(time.monotonic() - started, 2), checked=fresh.created)
    history = list(table.calibration.history)
    history.append({"replaced": check.checked, "profiled": table.created, "latency_scale": check.previous_scale,
                    "overhead_ms": check.previous_overhead_ms, "speed_ratio": check.speed_ratio,
                    "ops_retimed": ops, "device": check.device})
    updated = replace(fresh, calibration=replace(fresh.calibration, history=tuple(history),
                                                 recalibrated=check.checked), path=path)
    updated.save(path)
    return updated, check


def recalibrated_table(path: str | Path | None, device: Device, wanted: bool | None, log) -> tuple[
        LatencyTable | None, dict | None]:
    """The table at ``path`` recalibrated on ``device`` now, for export and verify (the search's own step).

    ``wanted=None`` checks local devices only.  Returns (table or None, drift record or None): None where the
    table file is gone or no check is wanted (the caller keeps the search's prediction).
    """
    from edgenas.hardware.tables import table_folders

    if not path:
        return None, None
    path = Path(path)
    if not path.is_file():  # a bundle on another machine: look for the table by name
        path = next((f / path.name for f in table_folders() if (f / path.name).is_file()), path)
    if not path.is_file():
        log(f"no drift check: table {path.name} is not on this machine; comparing with the search's prediction")
        return None, None
    return checked_table(LatencyTable.load(path), device, wanted, log)


def checked_table(table: LatencyTable, device: Device, wanted: bool | None, log) -> tuple[LatencyTable, dict | None]:
    """``table`` with its calibration refitted on ``device`` now, where a check is wanted (``None``: local devices
    only) and the table has anchors; the check is logged, as a warning beyond +-10%.  Returns (table, drift record
    or None).  The one drift step of ``search``, ``export`` and ``verify``."""
    if not (wanted if wanted is not None else device.kind == "local") or not table.calibration.networks:
        return table, None
    check = check_drift(table, device)
    hint = f" (to update the table itself: edgenas tables recalibrate {table.path})" if check.drifted else ""
    log(("warning: " if check.drifted else "") + check.describe() + "; predicting with the refitted calibration" + hint)
    return check.apply(table), check.record()
