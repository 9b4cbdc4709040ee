"""Latency/energy lookup tables: plain, versioned JSON; safe to load; no pickle.

A table belongs to one (device, runtime, precision, threads, search space,
task) tuple and says so in its header.  Its entries map an
:class:`~edgenas.space.ops.OpKey` string to the latency of that op measured alone on
the device (median over all timed runs, in ms), the spread (interquartile
range, ms), the number of runs and, where the device can measure it, the energy
per inference (mJ).  Two corrections fitted on the device during profiling make
predictions of whole networks right (see :mod:`edgenas.hardware.predict`):

- ``overhead``: the fixed cost of one runtime call, measured on a trivial model;
  every op timed alone pays it, a whole network pays it once;
- ``calibration``: a scale fitted on a handful of whole networks measured
  directly, with those measurements kept for reference.

Layout (``format_version`` 1)::

    {
      "format": "edgenas-latency-table", "format_version": 1,
      "tool_version": "0.1.0", "created": "2026-11-22T07:00:00Z",
      "device": {... the device description ...},
      "runtime": {"name": "onnxruntime", "version": "1.31.1",
                  "execution_provider": "CPUExecutionProvider", "delegate": null,
                  "threads": 1, "graph_optimization": "all"},
      "precision": "fp32",
      "space": {"name": "small", "fingerprint": "...", "resolutions": [32], "widths": [1.0],
                "stem": {...}, "stages": [...], "head": {...}},      (the whole definition)
      "task": {"in_channels": 3, "num_classes": 10},
      "measurement": {"warmup_runs": 5, "rounds": 5, "runs_per_round": 20, "seed": 0, ...},
      "energy_source": null,
      "host": {"os": "Linux", "machine": "aarch64", "python": "3.11.2", "numpy": "2.4.6",
               "runtime_version": "1.32.0", "cpu_count": 4, ...},   (what the agent reported; null if unknown)
      "overhead": {"latency_ms": 0.005, "energy_mj": null},
      "calibration": {"latency_scale": 1.0, "energy_scale": null,
                      "networks": [{"arch": "...", "measured_ms": 0.4, "uncalibrated_ms": 0.4}, ...]},
      "profiling_seconds": 21.4,
      "entries": {"mbconv_16x16_c24-40_k5_e6_s2_nores":
                  {"latency_ms": 0.0412, "spread_ms": 0.0009, "runs": 100, "energy_mj": null}, ...}
    }
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgenas.errors import ArchitectureError, TableError
from edgenas.resources import shipped_dir
from edgenas.space.cost import Precision
from edgenas.space.ops import OpKey

__all__ = [
    "FORMAT", "FORMAT_VERSION", "Calibration", "Entry", "LatencyTable", "Overhead", "Runtime", "find_table",
    "list_tables", "table_folders",
]

FORMAT = "edgenas-latency-table"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """Measurements of one op: median latency, its spread, runs, optional energy."""

    latency_ms: float
    spread_ms: float
    runs: int
    energy_mj: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "spread_ms": self.spread_ms, "runs": self.runs, "energy_mj": self.energy_mj}


def _split(data: dict, cls) -> tuple[dict, dict]:
    """A record's known fields and the rest (kept as ``extra``, so a newer table's additions survive a save)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


@dataclass(frozen=True)
class Runtime:
    """The runtime a table was measured with: name (``onnxruntime``, ``litert``), version, execution provider or
    delegate, threads and graph optimisation."""

    name: str
    version: str = ""
    execution_provider: str | None = None
    delegate: str | None = None
    threads: int | None = None
    graph_optimization: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def backend(self) -> str | None:
        return self.execution_provider or self.delegate

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "execution_provider": self.execution_provider,
                "delegate": self.delegate, "threads": self.threads, "graph_optimization": self.graph_optimization,
                **self.extra}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Runtime:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise TableError(f"{source}: runtime must be an object with a name")
        known, extra = _split(data, cls)
        return cls(**{**known, "version": str(known.get("version") or "")}, extra=extra)


@dataclass(frozen=True)
class Overhead:
    """The fixed cost of one runtime call, measured on a trivial model (``op``): every op timed alone pays it."""

    latency_ms: float
    energy_mj: float | None = None
    op: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj, "op": self.op, **self.extra}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Overhead:
        if not isinstance(data, dict) or not _finite(data.get("latency_ms"), 0):
            raise TableError(f"{source}: overhead.latency_ms must be a finite number >= 0")
        if data.get("energy_mj") is not None and not _finite(data.get("energy_mj"), 0):
            raise TableError(f"{source}: overhead.energy_mj must be a finite number >= 0 or null")
        known, extra = _split(data, cls)
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class Calibration:
    """How op sums become whole-network predictions: ``latency = latency_scale * sum of op compute + overhead_ms``
    (:mod:`edgenas.hardware.predict`), fitted on the anchor ``networks`` (``{arch, measured_ms, ...}``), with the
    earlier calibrations in ``history`` and the time of the last recalibration in ``recalibrated``."""

    latency_scale: float
    overhead_ms: float | None = None
    energy_scale: float | None = None
    method: str = ""
    networks: tuple[dict[str, Any], ...] = ()
    history: tuple[dict[str, Any], ...] = ()
    recalibrated: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"latency_scale": self.latency_scale, "overhead_ms": self.overhead_ms,
                "energy_scale": self.energy_scale, "method": self.method, "history": list(self.history),
                "networks": list(self.networks), "recalibrated": self.recalibrated,
                **self.extra}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Calibration:
        scale = data.get("latency_scale") if isinstance(data, dict) else None
        if not _finite(scale, 0) or not scale > 0:
            raise TableError(f"{source}: calibration.latency_scale must be a finite positive number")
        if data.get("overhead_ms") is not None and not _finite(data.get("overhead_ms"), 0):
            raise TableError(f"{source}: calibration.overhead_ms must be a finite number >= 0")
        if data.get("energy_scale") is not None and not _finite(data.get("energy_scale"), 0):
            raise TableError(f"{source}: calibration.energy_scale must be a finite number >= 0 or null")
        networks = data.get("networks", [])
        if not isinstance(networks, list) or not all(
                isinstance(n, dict) and isinstance(n.get("arch"), str) and _finite(n.get("measured_ms"), 0)
                for n in networks):
            raise TableError(f"{source}: calibration.networks must list {{arch, measured_ms}} objects")
        history = data.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise TableError(f"{source}: calibration.history must be a list of objects")
        known, extra = _split(data, cls)
        return cls(**{**known, "networks": tuple(networks), "history": tuple(history),
                      "method": str(known.get("method") or "")}, extra=extra)


@dataclass(frozen=True)
class LatencyTable:
    """One device's table; see the module docstring for the fields."""

    device: dict[str, Any]
    runtime: Runtime
    precision: Precision
    space: dict[str, Any]
    task: dict[str, int]
    measurement: dict[str, Any]
    entries: dict[str, Entry]
    overhead: Overhead
    calibration: Calibration
    energy_source: str | None = None
    tool_version: str = ""
    created: str = ""
    profiling_seconds: float | None = None
    host: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.path.name if self.path else f"{self.device.get('name', '?')}-{self.precision.value}"

    @property
    def space_fingerprint(self) -> str:
        return self.space["fingerprint"]

    @property
    def measurements_hash(self) -> str:
        """SHA-256 of what the table measured (device, runtime, precision, space, task, entries, overhead): two tables
        with the same hash predict alike up to their calibration."""
        import hashlib

        blob = json.dumps({"device": self.device.get("name"), "runtime": self.runtime.to_dict(),
                           "precision": self.precision.value, "space": self.space_fingerprint, "task": self.task,
                           "overhead": self.overhead.to_dict(),
                           "entries": {k: self.entries[k].to_dict() for k in sorted(self.entries)}}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def check_device(self, device) -> None:
        """Refuse a table measured on another device, runtime, execution provider/delegate or thread count."""
        rt = self.runtime
        mine = (self.device.get("name"), rt.name, rt.backend, rt.threads)
        theirs = (device.name, device.runtime, device.execution_provider or device.delegate, device.threads)
        names = ("device", "runtime", "execution provider/delegate", "threads")
        different = [f"{n} {a!r} (the table) vs {b!r}" for n, a, b in zip(names, mine, theirs) if a != b]
        if different:
            raise TableError(f"table {self.name} was measured on another setup: {'; '.join(different)}; use a table "
                             f"profiled on this device (edgenas profile --device {device.name})")

    @property
    def call_overhead_ms(self) -> float:
        """What one whole-network call adds to the calibrated compute (see :mod:`edgenas.hardware.predict`)."""
        call = self.calibration.overhead_ms
        if call is not None and call >= 0:
            return float(call)
        return float(self.calibration.latency_scale) * float(self.overhead.latency_ms)

    def with_calibration(self, latency_scale: float, overhead_ms: float, **changes) -> LatencyTable:
        """The same table with a new calibration (a recalibration on the device); ``changes`` sets other
        :class:`Calibration` fields (``history``, ``recalibrated``)."""
        calibration = replace(self.calibration, latency_scale=float(latency_scale), overhead_ms=float(overhead_ms),
                              **changes)
        return replace(self, calibration=calibration, path=self.path)

    @property
    def has_energy(self) -> bool:
        return self.energy_source is not None and all(e.energy_mj is not None for e in self.entries.values())

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool_version": self.tool_version,
            "created": self.created,
            "device": self.device,
            "runtime": self.runtime.to_dict(),
            "precision": self.precision.value,
            "space": self.space,
            "task": self.task,
            "measurement": self.measurement,
            "energy_source": self.energy_source,
            "host": self.host,
            "overhead": self.overhead.to_dict(),
            "calibration": self.calibration.to_dict(),
            "profiling_seconds": self.profiling_seconds,
            "entries": {key: self.entries[key].to_dict() for key in sorted(self.entries)},
        }

    def save(self, path: str | Path) -> Path:
        """Write the table atomically (a crash never leaves half a table)."""
        from edgenas.files import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Load and check a table file; every problem is a :class:`TableError` naming the file."""
        from edgenas.files import read_structured

        path = Path(path)
        data = read_structured(path, "latency table", TableError, (".json",))
        return cls.from_dict(data, source=str(path), path=path)

    @classmethod
    def from_dict(cls, data: Any, source: str = "latency table", path: Path | None = None) -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TableError(f"{source} is not an edgenas latency table (no \"format\": \"{FORMAT}\")")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise TableError(
                f"{source} has format version {version!r}; this edgenas reads version {FORMAT_VERSION}: "
                "profile the device again with this version"
            )
        required = ("device", "runtime", "precision", "space", "task", "measurement", "entries", "overhead", "calibration")
        missing = [k for k in required if k not in data]
        if missing:
            raise TableError(f"{source} lacks field(s) {', '.join(missing)}")
        try:
            precision = Precision(data["precision"])
        except ValueError:
            raise TableError(f"{source}: precision {data['precision']!r} is not fp32 or int8") from None
        if not isinstance(data["space"], dict) or "fingerprint" not in data["space"]:
            raise TableError(f"{source}: space lacks its fingerprint")
        task = data["task"]
        if not isinstance(task, dict) or not all(isinstance(task.get(k), int) for k in ("in_channels", "num_classes")):
            raise TableError(f"{source}: task must give integer in_channels and num_classes")
        entries = {}
        if not isinstance(data["entries"], dict) or not data["entries"]:
            raise TableError(f"{source} has no entries")
        for key, raw in data["entries"].items():
            try:
                OpKey.parse(key)
            except ArchitectureError:
                raise TableError(f"{source}: entry {key!r} is not an op key") from None
            try:
                entry = Entry(
                    float(raw["latency_ms"]), float(raw["spread_ms"]), int(raw["runs"]),
                    None if raw.get("energy_mj") is None else float(raw["energy_mj"]),
                )
            except (KeyError, TypeError, ValueError):
                raise TableError(f"{source}: entry {key} needs numeric latency_ms, spread_ms and runs") from None
            if not (math.isfinite(entry.latency_ms) and entry.latency_ms > 0):
                raise TableError(f"{source}: entry {key} has latency_ms {entry.latency_ms}, expected a positive number")
            if entry.energy_mj is not None and not (math.isfinite(entry.energy_mj) and entry.energy_mj >= 0):
                raise TableError(f"{source}: entry {key} has energy_mj {entry.energy_mj}, expected a number >= 0")
            entries[key] = entry
        for key in ("device", "measurement"):
            if not isinstance(data[key], dict):
                raise TableError(f"{source}: {key} must be an object")
        host = data.get("host")
        if host is not None and not isinstance(host, dict):
            raise TableError(f"{source}: host must be an object (what the device reported about itself) or null")
        runtime = Runtime.from_dict(data["runtime"], source)
        overhead = Overhead.from_dict(data["overhead"], source)
        calibration = Calibration.from_dict(data["calibration"], source)
        return cls(
            device=data["device"],
            runtime=runtime,
            precision=precision,
            space=data["space"],
            task={"in_channels": task["in_channels"], "num_classes": task["num_classes"]},
            measurement=data["measurement"],
            entries=entries,
            overhead=overhead,
            calibration=calibration,
            energy_source=data.get("energy_source"),
            tool_version=str(data.get("tool_version", "")),
            created=str(data.get("created", "")),
            profiling_seconds=data.get("profiling_seconds"),
            host=host,
            path=path,
        )

    # --------------------------------------------------------------- checks
    def search_space(self):
        """The space the table was profiled for, rebuilt from its stored definition."""
        from edgenas.errors import SpaceError
        from edgenas.space.mbconv import space_from_dict

        definition = {k: v for k, v in self.space.items() if k != "fingerprint"}
        try:
            space = space_from_dict(definition, source=f"table {self.name}")
        except SpaceError as exc:
            raise TableError(str(exc)) from None
        if space.fingerprint != self.space_fingerprint:
            raise TableError(f"table {self.name}: its space definition does not match its fingerprint")
        return space

    def check_compatible(self, space_name: str, fingerprint: str, precision: Precision | str) -> None:
        """Refuse use with another space or precision, saying which differs."""
        precision = Precision(precision)
        if self.space_fingerprint != fingerprint:
            raise TableError(
                f"table {self.name} was profiled for space '{self.space.get('name')}' "
                f"(resolutions {self.space.get('resolutions')}, fingerprint {self.space_fingerprint}), "
                f"not for space '{space_name}' (fingerprint {fingerprint}): profile the device for this space "
                "with edgenas profile"
            )
        if self.precision is not precision:
            raise TableError(
                f"table {self.name} holds {self.precision.value} latencies, but {precision.value} was asked for: "
                f"use a {precision.value} table (edgenas profile --precision {precision.value})"
            )

    def describe_host(self) -> str:
        """One line about the machine the table was measured on, as its agent reported it."""
        h = self.host
        if not h:
            return "not recorded (a table from before edgenas recorded it, or timed with benchmark_model)"
        system = " ".join(str(h[k]) for k in ("os", "os_release") if h.get(k))
        python = f"Python {h.get('python', '?')}" + (f" ({h['python_implementation']})"
                                                   if h.get("python_implementation") else "")
        machine = f"{h.get('machine', '?')}" + (f" ({h['cpu']})" if h.get("cpu") else "")
        parts = [machine, system, python, f"numpy {h.get('numpy', '?')}",
                 f"{h.get('runtime', self.runtime.name)} {h.get('runtime_version', '?')}",
                 f"{h.get('cpu_count', '?')} CPUs"]
        if h.get("libc"):
            parts.insert(2, str(h["libc"]))
        return ", ".join(p for p in parts if p)

    def summary(self) -> str:
        rt = self.runtime
        return (
            f"{self.name}: {self.device.get('name')} {rt.name} {rt.version} {rt.backend or ''} "
            f"{rt.threads}t {self.precision.value}, space {self.space.get('name')} "
            f"{self.space.get('resolutions')} ({self.space_fingerprint}), {len(self.entries)} ops"
        )


def _finite(value: Any, minimum: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= minimum


def table_folders() -> list[Path]:
    """Where tables are looked for: the shipped folder, then ``./latency_tables`` if it is another one."""
    folders = [shipped_dir("latency_tables")]
    local = Path("latency_tables")
    if local.is_dir() and local.resolve() != folders[0].resolve():
        folders.append(local)
    return folders


def list_tables(folder: str | Path | None = None) -> list[Path]:
    """Table files in ``folder`` (default: the shipped ``latency_tables/``)."""
    folder = Path(folder) if folder is not None else shipped_dir("latency_tables")
    return sorted(p for p in folder.glob("*.json"))


def find_table(
    device_name: str, fingerprint: str, precision: Precision | str, in_channels: int, num_classes: int,
    folder: str | Path | None = None,
) -> LatencyTable | None:
    """A table (shipped by default) for this device, space, precision and task, if one exists."""
    precision = Precision(precision)
    for path in list_tables(folder):
        try:
            table = LatencyTable.load(path)
        except TableError:
            continue
        if (
            table.device.get("name") == device_name
            and table.space_fingerprint == fingerprint
            and table.precision is precision
            and table.task == {"in_channels": in_channels, "num_classes": num_classes}
        ):
            return table
    return None
