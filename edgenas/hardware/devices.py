"""Device descriptions: which machine to profile and how to reach it.

A device is a small YAML file (see ``devices/`` for examples)::

    name: local-ort
    description: this machine, ONNX Runtime on the CPU, 1 thread
    transport: local                  # local | ssh://user@host[:port] | adb:<serial>
    runtime: onnxruntime              # onnxruntime | litert
    execution_provider: CPUExecutionProvider   # onnxruntime only
    delegate: xnnpack                 # litert only: xnnpack | none
    threads: 1
    precisions: [fp32, int8]
    energy: none                      # none | rapl | ina3221 | android
    memory_budget_kb: 512             # optional
    python: python3                   # ssh: the device's interpreter (local: this one)
    workdir: /tmp/edgenas             # ssh/adb: where files go on the device
    identity_file: ~/.ssh/id_ed25519  # ssh: optional key
    ssh_options: [StrictHostKeyChecking=accept-new]   # ssh: extra -o options
    benchmark_model: /data/local/tmp/benchmark_model   # adb: TFLite's benchmark tool on the phone
    adb: adb                          # adb: the adb executable on this machine

``--device`` takes a shipped device's name, or a path to such a file.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgenas.errors import DeviceConfigError, DeviceError
from edgenas.resources import shipped_dir
from edgenas.space.cost import Precision

__all__ = ["Device", "get_device", "list_devices", "load_device"]

RUNTIMES = ("onnxruntime", "litert")
ENERGY_SOURCES = ("none", "rapl", "ina3221", "android")
_SSH_RE = re.compile(r"ssh://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.:_\[\]-]+?)(?::(?P<port>\d+))?")
_ADB_RE = re.compile(r"adb:(?P<serial>[A-Za-z0-9._:-]+)")
_FIELDS = {
    "name", "description", "transport", "runtime", "execution_provider", "delegate", "threads", "precisions",
    "energy", "energy_root", "memory_budget_kb", "python", "workdir", "identity_file", "benchmark_model",
    "graph_optimization", "ssh_options", "adb",
}


@dataclass(frozen=True)
class Device:
    """A target device; see the module docstring for the fields."""

    name: str
    transport: str = "local"
    runtime: str = "onnxruntime"
    execution_provider: str | None = None
    delegate: str | None = None
    threads: int = 1
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8)
    energy: str = "none"
    energy_root: str = "/"
    memory_budget_kb: float | None = None
    python: str | None = None
    workdir: str = "/tmp/edgenas"
    identity_file: str | None = None
    benchmark_model: str = "/data/local/tmp/benchmark_model"
    graph_optimization: str = "all"
    ssh_options: tuple[str, ...] = ()
    adb: str = "adb"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"device '{self.name}'"
        if not self.name or not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise DeviceConfigError(f"device name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if self.runtime not in RUNTIMES:
            raise DeviceConfigError(f"{where}: runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if self.transport != "local" and not (_SSH_RE.fullmatch(self.transport) or _ADB_RE.fullmatch(self.transport)):
            raise DeviceConfigError(
                f"{where}: transport {self.transport!r} must be 'local', 'ssh://[user@]host[:port]' or 'adb:<serial>'"
            )
        if self.kind == "adb" and self.runtime != "litert":
            raise DeviceConfigError(f"{where}: adb devices are profiled with TFLite's benchmark_model; set runtime: litert")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise DeviceConfigError(f"{where}: threads must be a positive integer, got {self.threads!r}")
        budget = self.memory_budget_kb
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0):
            raise DeviceConfigError(f"{where}: memory_budget_kb must be a positive number of KiB, got {budget!r}")
        for key in ("name", "description", "transport", "python", "workdir", "energy_root", "benchmark_model", "adb",
                    "identity_file"):
            value = getattr(self, key, None)
            if value is not None and not isinstance(value, str):
                raise DeviceConfigError(f"{where}: {key} must be a string, got {value!r}")
        if self.energy not in ENERGY_SOURCES:
            raise DeviceConfigError(f"{where}: energy {self.energy!r} is not one of {', '.join(ENERGY_SOURCES)}")
        if self.graph_optimization not in ("disable", "basic", "extended", "all"):
            raise DeviceConfigError(f"{where}: graph_optimization must be disable, basic, extended or all")
        try:
            precisions = tuple(Precision(p) for p in self.precisions)
        except ValueError:
            raise DeviceConfigError(f"{where}: precisions must be fp32 and/or int8, got {list(self.precisions)}") from None
        object.__setattr__(self, "precisions", precisions)
        if isinstance(self.ssh_options, str) or not all(isinstance(o, str) for o in self.ssh_options):
            raise DeviceConfigError(f"{where}: ssh_options must be a list of 'Key=value' strings")
        object.__setattr__(self, "ssh_options", tuple(self.ssh_options))
        if self.execution_provider is None and self.runtime == "onnxruntime":
            object.__setattr__(self, "execution_provider", "CPUExecutionProvider")
        if self.delegate is None and self.runtime == "litert":
            object.__setattr__(self, "delegate", "xnnpack")

    @property
    def kind(self) -> str:
        """``local``, ``ssh`` or ``adb``."""
        return "local" if self.transport == "local" else self.transport.split(":", 1)[0]

    def ssh_target(self) -> tuple[str | None, str, int]:
        m = _SSH_RE.fullmatch(self.transport)
        if m is None:
            raise DeviceConfigError(f"device '{self.name}' is not reached over ssh")
        return m.group("user"), m.group("host"), int(m.group("port") or 22)

    def adb_serial(self) -> str:
        m = _ADB_RE.fullmatch(self.transport)
        if m is None:
            raise DeviceConfigError(f"device '{self.name}' is not reached over adb")
        return m.group("serial")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["precisions"] = [p.value for p in self.precisions]
        data["ssh_options"] = list(self.ssh_options)
        return data

    def describe(self) -> list[str]:
        backend = self.execution_provider if self.runtime == "onnxruntime" else f"delegate {self.delegate}"
        lines = [
            f"device      {self.name}",
            *([f"            {self.description}"] if self.description else []),
            f"transport   {self.transport}",
            f"runtime     {self.runtime} ({backend}), {self.threads} thread{'s' if self.threads > 1 else ''}",
            f"precisions  {', '.join(p.value for p in self.precisions)}",
            f"energy      {self.energy}",
        ]
        if self.memory_budget_kb is not None:
            lines.append(f"memory      {self.memory_budget_kb:g} KiB budget")
        if self.kind == "ssh":
            lines.append(f"python      {self.python or 'python3'} (on the device), workdir {self.workdir}")
        if self.kind == "adb":
            lines.append(f"benchmark   {self.benchmark_model}, workdir {self.workdir}")
        return lines


def device_from_dict(data: Any, source: str) -> Device:
    if not isinstance(data, dict):
        raise DeviceConfigError(f"{source}: expected a mapping of device fields")
    unknown = set(data) - _FIELDS
    if unknown:
        raise DeviceConfigError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_FIELDS))}")
    if "name" not in data:
        raise DeviceConfigError(f"{source}: missing field 'name'")
    data = dict(data)
    if "precisions" in data:
        precisions = data["precisions"]
        data["precisions"] = tuple(precisions) if isinstance(precisions, list) else (precisions,)
    try:
        return Device(**data)
    except DeviceError as exc:
        raise DeviceConfigError(f"{source}: {exc}") from None
    except TypeError as exc:
        raise DeviceConfigError(f"{source}: {exc}") from None


def load_device(path: str | Path) -> Device:
    from edgenas.files import read_structured

    data = read_structured(path, "device file", DeviceConfigError, (".yaml", ".yml"))
    return device_from_dict(data, f"device file {path}")


def _shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(shipped_dir("devices").glob("*.yaml"))}


def list_devices() -> list[Device]:
    """The shipped device descriptions."""
    return [load_device(p) for p in _shipped().values()]


def get_device(name_or_path: str | Path) -> Device:
    """A shipped device by name, or a device file by path."""
    key = str(name_or_path)
    shipped = _shipped()
    if key in shipped:
        return load_device(shipped[key])
    if key.endswith((".yaml", ".yml")) or Path(key).is_file():
        return load_device(key)
    raise DeviceConfigError(f"unknown device '{key}'; shipped devices: {', '.join(shipped)}, or give a .yaml file")
