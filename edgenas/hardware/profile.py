"""Profiling a device: time every op of a space there and write its latency table.

``profile_device`` builds one small model per distinct op of the space (the
workload of :func:`edgenas.space.ops.space_ops`), a trivial model that measures the
runtime's per-call overhead, and a handful of whole networks for calibration;
it copies them to the device with the device's transport and times them all
together there (see :mod:`edgenas.standalone.agent`): several rounds, each running every
model in a new shuffled order, so noise and drift spread over all models.

Work happens in a folder beside the table (``<table>.work/``).  Models are
written atomically and every finished round is saved, so a killed profile,
started again with the same arguments, goes on where it stopped.  The folder is
removed once the table is written.

The same :func:`measure` serves ``edgenas tables validate``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import posixpath
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgenas import __version__
from edgenas.errors import DeviceCommandError, DeviceConfigError, DeviceError
from edgenas.files import atomic_write_text
from edgenas.hardware.benchmark_model import parse_benchmark_model
from edgenas.hardware.devices import Device
from edgenas.hardware.tables import Calibration, Entry, LatencyTable, Overhead, Runtime
from edgenas.hardware.transports import Transport, make_transport
from edgenas.space.cost import Precision
from edgenas.space.genome import Architecture
from edgenas.space.mbconv import SearchSpace
from edgenas.space.ops import OpKey, OpType, decompose, space_ops

__all__ = [
    "MeasurementSettings", "ModelSpec", "default_table_path", "latency_statistic", "measure", "profile_device",
]

#: The trivial op whose timing is the runtime's fixed per-call overhead.
OVERHEAD_OP = OpKey(OpType.HEAD, 1, 1, 8, 8)


@dataclass(frozen=True)
class MeasurementSettings:
    """How models are timed.  ``runs_per_round=None`` picks by input size (fewer runs for big inputs)."""

    warmup_runs: int = 5
    rounds: int = 5
    runs_per_round: int | None = None
    calibration_networks: int = 8
    seed: int = 0
    energy_min_seconds: float = 0.1

    def runs_for(self, space: SearchSpace | None, resolution: int | None = None) -> int:
        """Runs per round: as set, else by input size (the space's largest resolution, or ``resolution``)."""
        if self.runs_per_round is not None:
            return self.runs_per_round
        return 20 if (resolution or max(space.resolutions)) <= 64 else 6


@dataclass(frozen=True)
class ModelSpec:
    """One model to time: an id, a file name, and how to build it (an op or a whole network)."""

    id: str
    file: str
    op: OpKey | None = None
    arch: Architecture | None = None


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="model", file=sys.stderr, dynamic_ncols=True, leave=True,
                disable=None, mininterval=0.5)


def _atomic_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data))


def model_cache_dir() -> Path | None:
    """Where built model files are cached: ``$EDGENAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgenas/models`` (default
    ``~/.cache/edgenas/models``); ``EDGENAS_CACHE_DIR=""`` turns the cache off."""
    env = os.environ.get("EDGENAS_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgenas" / "models"


def _model_key(runtime: str, spec: ModelSpec, space: SearchSpace | None, precision: Precision, in_channels: int,
               num_classes: int) -> str:
    """A model file's content address: what it is, for which runtime and precision, by which tool versions."""
    import torch

    what = {"op": str(spec.op)} if spec.op is not None else {
        "arch": str(spec.arch), "space": space.fingerprint if space else None, "in": in_channels, "classes": num_classes}
    blob = json.dumps({**what, "runtime": runtime, "precision": precision.value, "edgenas": __version__,
                       "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _build_model_file(runtime: str, op_text: str | None, arch_text: str | None, space_dict: dict | None,
                      precision: str, in_channels: int, num_classes: int, target: str, seed: int,
                      threads: int | None = None) -> str:
    """Build one model file (in this process or a worker): an op (``op_text``) or a whole network (``arch_text``)."""
    import torch

    from edgenas.hardware.opmodels import op_input_shape, write_model
    from edgenas.nn.model import build_model, build_op
    from edgenas.space.mbconv import space_from_dict

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)  # weights fixed by the content, not by the build order
    if op_text is not None:
        key = OpKey.parse(op_text)
        module, shape = build_op(key).eval(), op_input_shape(key)
    else:
        space = space_from_dict(space_dict)
        module = build_model(space, space.parse(arch_text), num_classes, in_channels).eval()
        shape = module.input_shape
    write_model(runtime, module, shape, Path(target), Precision(precision))
    return target


#: Build model files in parallel processes from this many missing models on (LiteRT conversion takes seconds each).
PARALLEL_BUILD_FROM = 16


def _write_models(
    device: Device, space: SearchSpace, specs: Sequence[ModelSpec], precision: Precision,
    in_channels: int, num_classes: int, folder: Path, quiet: bool,
) -> None:
    """Build the specs' model files into ``folder``.

    Models do not depend on the device, so each is built once per content (runtime, precision, op or network,
    tool versions) into a cache shared by every device and later profile (:func:`model_cache_dir`).  Many
    missing models are built in parallel spawned processes, one per core.
    """
    todo = [s for s in specs if not (folder / s.file).exists()]
    if not todo:
        return
    folder.mkdir(parents=True, exist_ok=True)
    cache = model_cache_dir()
    bar = _progress_bar(len(todo), f"building {precision.value} models") if not quiet else None
    jobs = []
    for spec in todo:
        key = _model_key(device.runtime, spec, space, precision, in_channels, num_classes)
        target = folder / spec.file
        cached = cache / f"{key}{target.suffix}" if cache is not None else None
        if cached is not None and cached.is_file():
            shutil.copyfile(cached, target.with_name("tmp-" + target.name))
            os.replace(target.with_name("tmp-" + target.name), target)
            if bar is not None:
                bar.update(1)
            continue
        args = (device.runtime, str(spec.op) if spec.op is not None else None,
                str(spec.arch) if spec.arch is not None else None,
                space.to_dict() if spec.arch is not None else None, precision.value, in_channels, num_classes,
                str(target.with_name("tmp-" + target.name)), int(key[:8], 16))
        jobs.append((target, cached, args))

    def finish(target: Path, cached: Path | None) -> None:
        tmp = target.with_name("tmp-" + target.name)
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                part = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
                shutil.copyfile(tmp, part)
                os.replace(part, cached)
            except OSError:  # a read-only or full cache only costs speed
                pass
        os.replace(tmp, target)
        if bar is not None:
            bar.update(1)

    cores = os.cpu_count() or 1
    try:
        if len(jobs) >= PARALLEL_BUILD_FROM and cores > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [(target, cached, pool.submit(_build_model_file, *args, 1)) for target, cached, args in jobs]
                for target, cached, future in futures:
                    future.result()
                    finish(target, cached)
        else:
            for target, cached, args in jobs:
                _build_model_file(*args)
                finish(target, cached)
    finally:
        if bar is not None:
            bar.close()


def measure(
    device: Device,
    space: SearchSpace | None,
    specs: Sequence[ModelSpec],
    precision: Precision,
    in_channels: int,
    num_classes: int,
    settings: MeasurementSettings,
    workdir: Path,
    *,
    quiet: bool = False,
    transport: Transport | None = None,
) -> dict:
    """Build, copy and time ``specs`` on ``device``; resumable through ``workdir``.

    Model files already in ``workdir/models`` are timed as they are (``space``
    may then be None, with ``settings.runs_per_round`` set).

    Returns ``{"runtime_version": ..., "energy_source": ..., "host": {what the agent reports about the machine}
    or None, "results": {id: {"rounds_ms": [[...], ...],
    "energy_mj": [...]}}}``: every run's time, grouped by round, and energy per round.
    """
    workdir = Path(workdir).resolve()  # job files name models by absolute path on local devices
    workdir.mkdir(parents=True, exist_ok=True)
    models_dir = workdir / "models"
    _write_models(device, space, specs, precision, in_channels, num_classes, models_dir, quiet)
    rounds_dir = workdir / "rounds"
    rounds_dir.mkdir(exist_ok=True)
    transport = transport or make_transport(device, local_workdir=str(workdir))
    runs = settings.runs_for(space)
    done = sorted(rounds_dir.glob("round-*.json"))
    if len(done) < settings.rounds:
        if device.kind == "adb":
            _measure_adb(device, transport, specs, settings, runs, workdir, quiet)
        else:
            _measure_agent(device, transport, specs, settings, runs, workdir, quiet)
    merged: dict = {"results": {s.id: {"rounds_ms": [], "energy_mj": []} for s in specs}}
    for r in range(settings.rounds):
        data = json.loads((rounds_dir / f"round-{r:03d}.json").read_text())
        merged["runtime_version"] = data["runtime_version"]
        merged["energy_source"] = data.get("energy_source")
        merged["host"] = data.get("host")
        for mid, res in data["results"].items():
            merged["results"][mid]["rounds_ms"].append(res["times_ms"])
            merged["results"][mid]["energy_mj"] += res.get("energy_mj", [])
    return merged


def _remote_dir(device: Device, transport: Transport, workdir: Path) -> str:
    if device.kind == "local":
        return str(workdir)
    tag = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:12]
    return transport.path(f"run-{tag}")


def _measure_agent(
    device: Device, transport: Transport, specs: Sequence[ModelSpec], settings: MeasurementSettings,
    runs: int, workdir: Path, quiet: bool,
) -> None:
    """Time with the Python agent (local and ssh devices)."""
    from edgenas.standalone import agent

    shutil.copyfile(agent.__file__, workdir / "agent.py")
    remote = _remote_dir(device, transport, workdir)
    if device.kind != "local":
        staging = workdir / "staging"
        staging.mkdir(exist_ok=True)
        shutil.copyfile(workdir / "agent.py", staging / "agent.py")
        shutil.copytree(workdir / "models", staging / "models", dirs_exist_ok=True)
        transport.push_dir(staging, remote)
        shutil.rmtree(staging)
    todo = [r for r in range(settings.rounds) if not (workdir / "rounds" / f"round-{r:03d}.json").exists()]
    bar = _progress_bar(len(todo) * len(specs), f"timing on {device.name}") if not quiet else None
    for r in todo:
        job = {
            "runtime": device.runtime,
            "threads": device.threads,
            "execution_provider": device.execution_provider,
            "delegate": device.delegate,
            "graph_optimization": device.graph_optimization,
            "energy": None if device.energy == "none" else device.energy,
            "energy_root": device.energy_root,
            "energy_min_seconds": settings.energy_min_seconds,
            "warmup_runs": settings.warmup_runs,
            "rounds": 1,
            "runs_per_round": runs,
            "seed": settings.seed * 1000 + r,
            # Local jobs name models by absolute path; remote ones relative to the job file's folder.
            "models": [
                {"id": s.id, "path": str(workdir / "models" / s.file) if device.kind == "local" else f"models/{s.file}"}
                for s in specs
            ],
        }
        job_name, result_name = f"job-{r:03d}.json", f"result-{r:03d}.json"
        jobs = workdir / "jobs"
        jobs.mkdir(exist_ok=True)
        _atomic_json(jobs / job_name, job)
        if device.kind == "local":
            job_path, result_path = str(jobs / job_name), str(jobs / result_name)
        else:
            push = workdir / "push"
            push.mkdir(exist_ok=True)
            shutil.copyfile(jobs / job_name, push / job_name)
            transport.push_dir(push, remote)
            shutil.rmtree(push)
            job_path, result_path = f"{remote}/{job_name}", f"{remote}/{result_name}"
        start = bar.n if bar is not None else 0

        def on_progress(line: str, start: int = start) -> None:
            if bar is not None:
                bar.n = start + int(line.split()[1])
                bar.refresh()

        transport.run(
            [transport.python(), f"{remote}/agent.py" if device.kind != "local" else str(workdir / "agent.py"),
             job_path, result_path],
            on_progress=on_progress,
        )
        local_result = jobs / result_name
        transport.pull(result_path, local_result)
        try:
            data = json.loads(local_result.read_text())
        except json.JSONDecodeError:
            raise DeviceCommandError(f"{device.name}: the timing agent wrote no valid result ({result_path})") from None
        _atomic_json(workdir / "rounds" / f"round-{r:03d}.json", data)
    if bar is not None:
        bar.close()


def _measure_adb(
    device: Device, transport: Transport, specs: Sequence[ModelSpec], settings: MeasurementSettings,
    runs: int, workdir: Path, quiet: bool,
) -> None:
    """Time with TFLite's benchmark_model on an Android device (one call per model and round)."""
    from edgenas.standalone.agent import android_power_w

    remote = _remote_dir(device, transport, workdir)
    transport.push_dir(workdir / "models", f"{remote}/models")
    transport.run([device.benchmark_model, "--help"])  # fails clearly if the binary is missing
    todo = [r for r in range(settings.rounds) if not (workdir / "rounds" / f"round-{r:03d}.json").exists()]
    bar = _progress_bar(len(todo) * len(specs), f"timing on {device.name}") if not quiet else None
    supply = posixpath.join(device.energy_root, "sys/class/power_supply/battery")
    for r in todo:
        rng = np.random.default_rng(settings.seed * 1000 + r)
        results = {}
        for idx in rng.permutation(len(specs)):
            spec = specs[idx]
            argv = [
                device.benchmark_model, f"--graph={remote}/models/{spec.file}", f"--num_threads={device.threads}",
                f"--warmup_runs={settings.warmup_runs}", f"--num_runs={runs}", "--min_secs=0",
                f"--use_xnnpack={'true' if device.delegate == 'xnnpack' else 'false'}",
            ]
            out = transport.run(argv)
            stats = parse_benchmark_model(out.stdout + "\n" + out.stderr, source=f"{device.name}: {spec.file}")
            entry = {"times_ms": [stats.latency_us / 1e3]}
            if device.energy == "android":
                reading = transport.run(["cat", f"{supply}/current_now", f"{supply}/voltage_now"]).stdout.split()
                try:
                    power_w = android_power_w(float(reading[0]), float(reading[1]))
                except (IndexError, ValueError):
                    raise DeviceError(f"{device.name}: cannot read {supply}/current_now and voltage_now") from None
                entry["energy_mj"] = [power_w * stats.latency_us / 1e3]  # W x ms = mJ
            results[spec.id] = entry
            if bar is not None:
                bar.update(1)
        _atomic_json(workdir / "rounds" / f"round-{r:03d}.json", {
            "runtime_version": "benchmark_model",
            "energy_source": "android" if device.energy == "android" else None,
            "results": results,
        })
    if bar is not None:
        bar.close()


def default_table_path(
    device: Device, space: SearchSpace, precision: Precision, in_channels: int, num_classes: int,
    folder: str | Path = "latency_tables",
) -> Path:
    res = "-".join(str(r) for r in space.resolutions)
    widths = "" if space.widths == (1.0,) else "-w" + "-".join(f"{w:g}" for w in space.widths)
    return Path(folder) / f"{device.name}_{space.name}-r{res}{widths}_{in_channels}ch-{num_classes}cls_{precision.value}.json"


def latency_statistic(rounds_ms: Sequence[Sequence[float]]) -> float:
    """The latency of one model from its timed runs, grouped by round: the fastest round's median.

    Runs within a round are consecutive, so they share the machine's state;
    other work on a shared machine (or throttling) only ever slows runs down,
    so the fastest round is the best estimate of the device's own speed.  The
    same statistic serves op timings, calibration and validation.
    """
    return float(min(np.median(r) for r in rounds_ms))


def spread_statistic(rounds_ms: Sequence[Sequence[float]]) -> float:
    """Interquartile range of all runs (ms)."""
    q25, q75 = np.percentile(np.concatenate([np.asarray(r, dtype=float) for r in rounds_ms]), [25, 75])
    return float(q75 - q25)


def calibration_architectures(space: SearchSpace, n: int, seed: int) -> list[Architecture]:
    rng = np.random.default_rng(10_000 + seed)
    archs: list[Architecture] = []
    for _ in range(50 * max(n, 1)):
        if len(archs) == n:
            break
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)
    return archs


def profile_device(
    device: Device,
    space: SearchSpace,
    precision: Precision | str,
    in_channels: int,
    num_classes: int,
    out: str | Path | None = None,
    settings: MeasurementSettings | None = None,
    *,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> LatencyTable:
    """Profile ``space`` on ``device`` and write the table to ``out``; resumes an interrupted run."""
    precision = Precision(precision)
    settings = settings or MeasurementSettings()
    if precision not in device.precisions:
        raise DeviceConfigError(
            f"device '{device.name}' does not list {precision.value} among its precisions "
            f"({', '.join(p.value for p in device.precisions)})"
        )
    out = Path(out) if out is not None else default_table_path(device, space, precision, in_channels, num_classes)
    workdir = out.with_name(out.name + ".work")
    identity = {
        "device": device.to_dict(), "space": space.to_dict(), "precision": precision.value,
        "task": [in_channels, num_classes], "settings": asdict(settings), "tool_version": __version__,
    }
    state = workdir / "state.json"
    active_before = 0.0
    if state.exists():
        previous = json.loads(state.read_text())
        if previous.get("identity") != identity:
            raise DeviceError(
                f"{workdir} holds an unfinished profile with other settings; remove it, or choose another --out"
            )
        rounds_done = len(list((workdir / "rounds").glob("round-*.json"))) if (workdir / "rounds").exists() else 0
        if log:
            log(f"resuming the profile in {workdir} ({rounds_done} of {settings.rounds} rounds done)")
        active_before = float(previous.get("active_seconds", 0.0))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        _atomic_json(state, {"identity": identity, "active_seconds": 0.0})
    started = time.monotonic()
    try:
        return _profile(device, space, precision, in_channels=in_channels, num_classes=num_classes, out=out,
                        settings=settings, workdir=workdir, quiet=quiet, active_before=active_before, started=started)
    finally:
        if state.exists():  # interrupted: keep the time spent so far for the resumed run's total
            _atomic_json(state, {"identity": identity, "active_seconds": active_before + time.monotonic() - started})


def _anchor_networks(space, calib, in_channels, num_classes, entries, results, overhead_ms, overhead_mj,
                     has_energy) -> tuple[list[dict], list[float], list[float], list[float]]:
    """The calibration networks: measured whole, and their sums of op compute times from the fresh entries."""
    from edgenas.hardware.predict import op_compute_ms

    networks, compute_sums, measured_all, energy_ratios = [], [], [], []
    for arch in calib:
        ops = decompose(space, arch, in_channels, num_classes)
        compute = float(op_compute_ms([entries[str(k)].latency_ms for k in ops], overhead_ms).sum())
        measured_ms = latency_statistic(results[f"net:{arch}"]["rounds_ms"])
        item = {"arch": str(arch), "measured_ms": measured_ms, "uncalibrated_ms": compute + overhead_ms}
        compute_sums.append(compute)
        measured_all.append(measured_ms)
        if has_energy:
            raw_mj = float(op_compute_ms([entries[str(k)].energy_mj for k in ops], overhead_mj).sum()) + overhead_mj
            measured_mj = float(np.median(results[f"net:{arch}"]["energy_mj"]))
            item.update(measured_mj=measured_mj, uncalibrated_mj=raw_mj)
            energy_ratios.append(measured_mj / raw_mj if raw_mj > 0 else 1.0)
        networks.append(item)
    return networks, compute_sums, measured_all, energy_ratios


def _profile(device: Device, space: SearchSpace, precision: Precision, *, in_channels: int, num_classes: int,
             out: Path, settings: MeasurementSettings, workdir: Path, quiet: bool, active_before: float,
             started: float) -> LatencyTable:
    keys = space_ops(space, in_channels, num_classes)
    calib = calibration_architectures(space, settings.calibration_networks, settings.seed)
    from edgenas.hardware.opmodels import MODEL_SUFFIX

    suffix = MODEL_SUFFIX[device.runtime]
    specs = [ModelSpec(str(k), f"op{i:04d}{suffix}", op=k) for i, k in enumerate(keys)]
    specs.append(ModelSpec("overhead", f"overhead{suffix}", op=OVERHEAD_OP))
    specs += [ModelSpec(f"net:{a}", f"net{i:03d}{suffix}", arch=a) for i, a in enumerate(calib)]
    measured = measure(device, space, specs, precision, in_channels, num_classes, settings, workdir, quiet=quiet)

    results = measured["results"]
    has_energy = measured.get("energy_source") is not None
    entries = {}
    for spec in specs[: len(keys)]:
        rounds_ms = results[spec.id]["rounds_ms"]
        energy = float(np.median(results[spec.id]["energy_mj"])) if has_energy else None
        entries[spec.id] = Entry(
            latency_statistic(rounds_ms), spread_statistic(rounds_ms), sum(len(r) for r in rounds_ms), energy
        )
    overhead_ms = latency_statistic(results["overhead"]["rounds_ms"])
    overhead_mj = float(np.median(results["overhead"]["energy_mj"])) if has_energy else None

    networks, compute_sums, measured_all, energy_ratios = _anchor_networks(
        space, calib, in_channels, num_classes, entries, results, overhead_ms, overhead_mj, has_energy)
    from edgenas.hardware.predict import fit_calibration

    scale, call_ms = fit_calibration(compute_sums, measured_all, overhead_ms)
    table = LatencyTable(
        device=device.to_dict(),
        runtime=Runtime(device.runtime, measured.get("runtime_version", ""), device.execution_provider,
                        device.delegate, device.threads, device.graph_optimization),
        precision=precision,
        space={**space.to_dict(), "fingerprint": space.fingerprint},
        task={"in_channels": in_channels, "num_classes": num_classes},
        measurement={
            "warmup_runs": settings.warmup_runs, "rounds": settings.rounds, "runs_per_round": settings.runs_for(space),
            "seed": settings.seed, "order": "every round runs all models, shuffled",
            "statistic": "median of each round's runs, fastest round kept; spread = interquartile range of all runs",
            "timer": "perf_counter around one run (ONNX Runtime: session.run with a numpy input)"
            if device.kind != "adb" else "benchmark_model per-round average",
        },
        entries=entries,
        overhead=Overhead(overhead_ms, overhead_mj, str(OVERHEAD_OP)),
        calibration=Calibration(
            latency_scale=scale, overhead_ms=call_ms,
            energy_scale=float(np.median(energy_ratios)) if energy_ratios else None,
            method="latency = scale * sum of op compute times + overhead_ms; scale = median of (measured - "
                   "overhead) / compute sum over whole networks timed with the ops",
            networks=tuple(networks)),
        energy_source=measured.get("energy_source"),
        host=measured.get("host"),
        tool_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        profiling_seconds=round(active_before + time.monotonic() - started, 1),
    )
    table.save(out)
    object.__setattr__(table, "path", out)
    shutil.rmtree(workdir, ignore_errors=True)
    return table
