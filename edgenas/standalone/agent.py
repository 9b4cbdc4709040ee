"""edgenas timing agent: times model files on the machine it runs on.

This file is standalone on purpose: it needs only the Python standard library,
numpy and the runtime being timed (onnxruntime, or ai-edge-litert with
tflite_runtime as a fallback), so that edgenas can copy it to a device (over
ssh) and run it with the device's own Python::

    python3 agent.py JOB.json RESULTS.json
    python3 agent.py --host onnxruntime        # prints what the device reports about itself (JSON)

A job names the runtime, threads, execution provider or delegate, the model
files, and the measurement settings.  Every model is loaded and warmed up; then
``rounds`` rounds each run every model ``runs_per_round`` times, in an order
shuffled anew each round (seeded), so drift of a shared, noisy machine spreads
over all models instead of biasing some.  Each run is timed alone
(``time.perf_counter``); results are every run's time in milliseconds.

Energy: if the job names an energy source (``rapl``, ``ina3221``, ``android``)
each model's block in each round runs for at least ``energy_min_seconds`` and
the meter reports the joules used; energy per inference is reported in mJ.
The readers take a ``root`` so tests can point them at a copy of the sysfs
tree.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
import threading
import time

import numpy as np

AGENT_VERSION = 2  # 2: results carry ``host``

# --------------------------------------------------------------------- energy


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _read_number(path: str) -> float:
    return float(_read_text(path))


class EnergyUnavailable(RuntimeError):
    """No readable energy source of the requested kind."""


class RaplMeter:
    """Linux RAPL: cumulative ``energy_uj`` counters of each package, wrapping at ``max_energy_range_uj``."""

    def __init__(self, root: str = "/") -> None:
        zones = sorted(glob.glob(os.path.join(root, "sys/class/powercap/intel-rapl:[0-9]*")))
        # Top-level packages only ("intel-rapl:0"); sub-zones ("intel-rapl:0:1") are part of them.
        self.zones = [z for z in zones if os.path.basename(z).count(":") == 1]
        readable = []
        for zone in self.zones:
            try:
                _read_number(os.path.join(zone, "energy_uj"))
                readable.append(zone)
            except (OSError, ValueError):
                continue
        if not readable:
            raise EnergyUnavailable(f"no readable RAPL energy_uj under {root}sys/class/powercap")
        self.zones = readable
        self.ranges = [_read_number(os.path.join(z, "max_energy_range_uj")) for z in self.zones]

    def read_uj(self) -> list[float]:
        return [_read_number(os.path.join(z, "energy_uj")) for z in self.zones]

    def start(self) -> None:
        self._start = self.read_uj()

    def stop(self) -> float:
        """Joules since :meth:`start`, counter wrap-around handled."""
        total = 0.0
        for before, after, span in zip(self._start, self.read_uj(), self.ranges):
            total += after - before if after >= before else after + span - before
        return total / 1e6


class _SampledMeter:
    """Integrates a power reading (watts) sampled by a background thread."""

    interval_s = 0.005

    def power_w(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> None:
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._samples.append(self.power_w())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._samples.append(self.power_w())

    def stop(self) -> float:
        """Joules since :meth:`start`: mean sampled power times elapsed time."""
        self._stop.set()
        self._thread.join()
        elapsed = time.perf_counter() - self._t0
        self._samples.append(self.power_w())
        return float(np.mean(self._samples)) * elapsed


class Ina3221Meter(_SampledMeter):
    """NVIDIA Jetson INA3221 power monitor, total input rail (VDD_IN, or POM_5V_IN on older boards).

    JetPack >= 5 (hwmon): ``in<N>_label`` names the rail, ``in<N>_input`` is mV, ``curr<N>_input`` mA.
    JetPack 4 (iio): ``rail_name_<N>`` names the rail, ``in_power<N>_input`` is mW.
    """

    RAILS = ("VDD_IN", "POM_5V_IN")

    def __init__(self, root: str = "/") -> None:
        self._read = None
        for pattern in (
            "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_label",
            "sys/class/hwmon/hwmon*/in*_label",
        ):
            for label in sorted(glob.glob(os.path.join(root, pattern))):
                name = _read_text(label)
                if name in self.RAILS:
                    n = os.path.basename(label)[2:-6]
                    folder = os.path.dirname(label)
                    volt, curr = os.path.join(folder, f"in{n}_input"), os.path.join(folder, f"curr{n}_input")
                    self._read = lambda v=volt, c=curr: _read_number(v) * _read_number(c) / 1e6  # mV*mA -> W
                    self.rail = name
                    break
            if self._read:
                break
        if self._read is None:
            for rail in sorted(glob.glob(os.path.join(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*"))):
                name = _read_text(rail)
                if name in self.RAILS:
                    n = rail.rsplit("_", 1)[1]
                    power = os.path.join(os.path.dirname(rail), f"in_power{n}_input")
                    self._read = lambda p=power: _read_number(p) / 1e3  # mW -> W
                    self.rail = name
                    break
        if self._read is None:
            raise EnergyUnavailable(f"no INA3221 input rail ({' or '.join(self.RAILS)}) under {root}sys")
        self._read()

    def power_w(self) -> float:
        return self._read()


class AndroidPowerMeter(_SampledMeter):
    """Android battery: ``current_now`` (microamps) x ``voltage_now`` (microvolts).

    Vendor quirks handled: the sign of the current varies (its magnitude is
    used); some kernels report milliamps or millivolts (values too small to be
    micro-units are scaled up).
    """

    def __init__(self, root: str = "/") -> None:
        base = os.path.join(root, "sys/class/power_supply")
        candidates = [os.path.join(base, "battery")] + sorted(glob.glob(os.path.join(base, "*")))
        self.folder = None
        for folder in candidates:
            try:
                kind = _read_text(os.path.join(folder, "type")) if os.path.exists(os.path.join(folder, "type")) else ""
                if os.path.basename(folder) != "battery" and kind != "Battery":
                    continue
                _read_number(os.path.join(folder, "current_now"))
                _read_number(os.path.join(folder, "voltage_now"))
            except (OSError, ValueError):
                continue
            self.folder = folder
            break
        if self.folder is None:
            raise EnergyUnavailable(f"no readable battery current_now/voltage_now under {base}")

    def power_w(self) -> float:
        return android_power_w(
            _read_number(os.path.join(self.folder, "current_now")), _read_number(os.path.join(self.folder, "voltage_now"))
        )


def android_power_w(current_now: float, voltage_now: float) -> float:
    """Watts from Android's ``current_now`` (uA) and ``voltage_now`` (uV), vendor quirks handled."""
    current, voltage = abs(current_now), abs(voltage_now)
    if 0 < current < 10_000:  # below 10 mA in microamps is implausible: the kernel reports mA
        current *= 1000
    if 0 < voltage < 100_000:  # below 0.1 V in microvolts: reported in mV
        voltage *= 1000
    return current * voltage / 1e12


METERS = {"rapl": RaplMeter, "ina3221": Ina3221Meter, "android": AndroidPowerMeter}


def make_meter(source: str | None, root: str = "/"):
    """The meter of ``source``, or None when ``source`` is None/"none"."""
    if source in (None, "none"):
        return None
    if source not in METERS:
        raise EnergyUnavailable(f"unknown energy source {source!r}; expected one of {', '.join(METERS)} or none")
    return METERS[source](root)


# -------------------------------------------------------------------- runners


class OrtRunner:
    """One ONNX Runtime session, run as a deployed application runs it: ``session.run`` with a numpy input.

    (IOBinding would time 2-6 us less per call on this machine's 32x32 networks; the tables measure what users get.)
    """

    def __init__(self, path: str, threads: int, provider: str, optimization: str, seed: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        self.session = ort.InferenceSession(path, opts, providers=[provider])
        inp = self.session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        dtype = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}[inp.type]
        data = _random_input(shape, dtype, seed)
        self.feed = {inp.name: data}
        self.session.run(None, self.feed)

    def run(self) -> None:
        self.session.run(None, self.feed)


class LiteRtRunner:
    """One LiteRT (TFLite) interpreter, ai-edge-litert or else tflite_runtime, XNNPACK by default."""

    def __init__(self, path: str, threads: int, delegate: str, seed: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:  # on devices that only have the older package
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        resolver = (
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "none" else OpResolverType.AUTO
        )
        self.interpreter = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        self.interpreter.set_tensor(detail["index"], _random_input(list(detail["shape"]), detail["dtype"], seed))
        self.interpreter.invoke()

    def run(self) -> None:
        self.interpreter.invoke()


def _random_input(shape, dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def runtime_version(runtime: str) -> str:
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    try:
        import ai_edge_litert

        return "ai-edge-litert " + getattr(ai_edge_litert, "__version__", "unknown")
    except ImportError:
        import tflite_runtime

        return "tflite_runtime " + getattr(tflite_runtime, "__version__", "unknown")


def _cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (x86: ``model name``; Arm: implementer and part numbers), else ''."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor()
    if fields.get("model name"):
        return fields["model name"]
    if fields.get("CPU part"):
        return f"Arm implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    return fields.get("Hardware", "") or platform.processor()


def host_info(runtime: str) -> dict:
    """What this machine says about itself: OS, CPU architecture, Python, numpy, the runtime, CPU count.

    Recorded in every table, so a table says which machine it describes (an emulated arm64 userland reports
    ``aarch64`` here, and the CPU count of the machine that emulates it)."""
    try:
        version = runtime_version(runtime)
    except ImportError:
        version = "not installed"
    libc, libc_version = platform.libc_ver()
    return {
        "cpu": _cpu_model(),
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libc": f"{libc} {libc_version}".strip(),
        "numpy": np.__version__,
        "runtime": runtime,
        "runtime_version": version,
        "cpu_count": os.cpu_count(),
    }


def make_runner(job: dict, path: str, seed: int):
    if job["runtime"] == "onnxruntime":
        return OrtRunner(path, job["threads"], job.get("execution_provider") or "CPUExecutionProvider",
                         job.get("graph_optimization", "all"), seed)
    if job["runtime"] == "litert":
        return LiteRtRunner(path, job["threads"], job.get("delegate") or "xnnpack", seed)
    raise ValueError(f"unknown runtime {job['runtime']!r}")


# ----------------------------------------------------------------------- job


def run_job(job: dict, base_dir: str = ".", progress=None) -> dict:
    """Time every model of ``job``; see the module docstring.  Paths are relative to ``base_dir``.

    ``progress(done, total)`` is called after each model's block of runs.
    """
    meter = make_meter(job.get("energy"), job.get("energy_root", "/"))
    models = job["models"]
    runners = {}
    for i, model in enumerate(models):
        runners[model["id"]] = make_runner(job, os.path.join(base_dir, model["path"]), seed=i)
    warmup, rounds, runs = job["warmup_runs"], job["rounds"], job["runs_per_round"]
    min_energy_s = float(job.get("energy_min_seconds", 0.1))
    for runner in runners.values():
        for _ in range(warmup):
            runner.run()
    times = {mid: [] for mid in runners}
    energy = {mid: [] for mid in runners}
    rng = np.random.default_rng(job.get("seed", 0))
    ids = list(runners)
    clock = time.perf_counter
    total, done = rounds * len(ids), 0
    for _ in range(rounds):
        for idx in rng.permutation(len(ids)):
            mid = ids[idx]
            run = runners[mid].run
            record = times[mid].append
            for _ in range(runs):
                t0 = clock()
                run()
                record((clock() - t0) * 1e3)
            if meter is not None:
                n, t_start = 0, clock()
                meter.start()
                while n < runs or clock() - t_start < min_energy_s:
                    run()
                    n += 1
                energy[mid].append(meter.stop() * 1e3 / n)
            done += 1
            if progress is not None:
                progress(done, total)
    return {
        "agent_version": AGENT_VERSION,
        "runtime": job["runtime"],
        "runtime_version": runtime_version(job["runtime"]),
        "energy_source": job.get("energy") if meter is not None else None,
        "host": host_info(job["runtime"]),
        "results": {
            mid: {"times_ms": times[mid], **({"energy_mj": energy[mid]} if meter is not None else {})} for mid in ids
        },
    }


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--host":  # agent.py --host RUNTIME: the device describes itself
        print(json.dumps(host_info(argv[2])))
        return 0
    if len(argv) != 3:
        print("usage: agent.py JOB.json RESULTS.json | agent.py --host RUNTIME", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        job = json.load(f)
    try:
        def progress(done: int, total: int) -> None:
            print(f"edgenas-progress {done} {total}", file=sys.stderr, flush=True)

        result = run_job(job, base_dir=os.path.dirname(os.path.abspath(argv[1])), progress=progress)
    except EnergyUnavailable as exc:
        print(f"edgenas agent: {exc}", file=sys.stderr)
        return 3
    tmp = argv[2] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
