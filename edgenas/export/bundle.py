"""Export front members as deployable bundles, each file verified in its real runtime.

``export_run(run_dir, ...)`` rebuilds each chosen member of a search run with
its trained weights (retraining it with the run's recipe if the run kept
none, and saying so) and writes one bundle per member:

- ``model.fp32.onnx`` (torch's ONNX exporter) and ``model.int8.onnx`` (ONNX
  Runtime ``quant_pre_process`` + ``quantize_static``: QDQ, per-channel int8
  weights, uint8 activations, min-max calibration on training images);
- ``model.fp32.tflite`` (litert-torch, NHWC input) and ``model.int8.tflite``
  (ai-edge-quantizer static int8, min-max calibration), with the ``tflite`` extra;
- ``metadata.json``: architecture, input shape and layout, normalisation, labels,
  the predicted latency/energy/memory/size on the search's device (the very
  values the search used), measured fp32 and int8 accuracy, file sizes, tool version;
- ``samples.npz`` (a few validation images with labels) and ``run.py``, a
  standalone runner that needs only numpy and one runtime
  (:mod:`edgenas.standalone.bundle_runner`).

Every file is verified: ``onnx.checker`` for ONNX; fp32 outputs against torch;
accuracy on the run's validation split in the runtime, through the same code as
``run.py``; int8 argmax agreement with torch; size on disk; latency on this
machine (the agent's timing, as in profiling) against the table's prediction
where the run's device is this machine with that runtime and precision.  An
int8 accuracy drop above ``max_drop_pct`` points flags the member instead of
shipping it silently.  A member that fails is reported and the others go on.

``deploy_bundle`` copies a bundle to a device through its transport and runs
``run.py`` there; ``verify_bundle`` times the bundle's model on the device with
the profiling agent and compares the latency with the prediction.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgenas import __version__
from edgenas.errors import ExportError
from edgenas.export.formats import ExportFormat, format_for_runtime, parse_formats
from edgenas.files import atomic_write_text
from edgenas.logs import stderr_log
from edgenas.nn.data import PREPROCESSING
from edgenas.search.archive import Status
from edgenas.space.cost import Precision

__all__ = ["DeployResult", "FileReport", "MemberReport", "VerifyResult", "deploy_bundle", "export_run", "read_bundle", "time_model_files",
           "verify_bundle"]

#: Validation images stored in a bundle for ``run.py --check``.
SAMPLES = 20


@dataclass
class FileReport:
    """One exported model file and what its verification measured."""

    file: str
    format: str
    precision: str
    size_kb: float
    accuracy: float | None = None  # validation top-1 in the runtime, [0, 1]
    max_abs_diff: float | None = None  # fp32: largest output difference from torch
    agreement: float | None = None  # share of validation images with torch's top-1
    latency_ms: float | None = None  # measured on this machine (fastest round's median)
    predicted_latency_ms: float | None = None  # the table's prediction, where it applies


@dataclass
class MemberReport:
    id: int
    arch: str
    status: str = "ok"  # "ok", "flagged" (exported, but a check is off) or "failed" (no bundle)
    reason: str = ""
    bundle: str | None = None
    torch_accuracy: float | None = None
    files: list[FileReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def select_members(evaluations, objectives, members: str):
    """The evaluations to export: ``front`` or comma-separated archive ids (as ``edgenas front`` lists them)."""
    from edgenas.search.pareto import pareto_front

    if members.strip() == "front":
        chosen = pareto_front(evaluations, objectives)
        if not chosen:
            raise ExportError("the run has no front yet (no trained, feasible network): nothing to export")
        return chosen
    by_id = {e.id: e for e in evaluations}
    chosen = []
    for part in members.split(","):
        try:
            key = int(part)
        except ValueError:
            raise ExportError(f"--members takes 'front' or archive ids like 3,17 (see 'edgenas front RUN'), "
                              f"got {part.strip()!r}") from None
        if key not in by_id:
            raise ExportError(f"the run has no evaluation with id {key}; 'edgenas front RUN' lists the ids")
        if by_id[key].status != Status.OK:
            raise ExportError(f"evaluation {key} ({by_id[key].arch}) was not trained ({by_id[key].status}): "
                              "choose a trained network")
        chosen.append(by_id[key])
    return chosen


# --------------------------------------------------------------------- run
@dataclass
class _RunContext:
    run_dir: Path
    resolved: dict
    space: object
    train: tuple
    val: tuple
    raw_val: np.ndarray
    calibration: np.ndarray
    data: object
    mean: np.ndarray
    std: np.ndarray
    precision: Precision  # the search's precision (its table's)
    device: dict
    evaluations: list = field(default_factory=list)
    predictor: object = None  # the run's table recalibrated now (drift check), else None
    drift: dict | None = None
    supernet: object = None  # a supernet run's LoadedSupernet, loaded on first use (once for every member)

    def loaded_supernet(self):
        if self.supernet is None:
            from edgenas.nn.supernet import load_supernet

            self.supernet = load_supernet(self.resolved["config"]["supernet"], self.resolved["config"]["data"])
        return self.supernet


def _lineage_epochs(evaluations, ev) -> int:
    """Epochs of ``ev`` and of every ancestor it inherited weights from (its total training)."""
    by_arch = {e.arch: e for e in evaluations}
    total, seen, node = 0, set(), ev
    while node is not None and node.arch not in seen:
        seen.add(node.arch)
        total += node.epochs
        node = by_arch.get(node.parent) if node.parent else None
    return total


def _load_context(run_dir: Path, resolved: dict) -> _RunContext:
    from edgenas.nn.data import load_data
    from edgenas.space.mbconv import space_from_dict

    config = resolved["config"]
    space_dict = {k: v for k, v in resolved["space"].items() if k != "fingerprint"}
    space = space_from_dict(space_dict, source=f"{run_dir}/config.json")
    data = load_data(config["data"]).resized(max(space.resolutions))
    saved_split = resolved.get("data", {}).get("split") or {}  # the split the search measured on
    split = data.split(saved_split.get("val_fraction", config["val_fraction"]), saved_split.get("seed", config["seed"]))
    train, val = split.normalised("train"), split.normalised("val")
    rng = np.random.default_rng(config["seed"])
    calibration = train[0][rng.choice(len(train[1]), size=min(128, len(train[1])), replace=False)]
    return _RunContext(run_dir, resolved, space, train, val, data.x[split.val], calibration, data, split.mean,
                       split.std, Precision(config["precision"]), resolved.get("device", {}))


def export_run(
    run_dir: str | Path,
    *,
    members: str = "front",
    formats: str | Sequence[str] = ("onnx",),
    precision: str = "int8",
    out: str | Path | None = None,
    measure_latency: bool = True,
    max_drop_pct: float = 1.0,
    drift_check: bool | None = None,
    log: Callable[[str], None] = stderr_log,
) -> tuple[Path, list[MemberReport]]:
    """Export members of a search run; see the module docstring.  Returns the output folder and one report each.

    Where latency is measured here and the run's device is this machine, the table's anchors are timed again
    first (``drift_check``; default on for local devices), so measured and predicted latency are compared on
    today's calibration, recorded in each bundle's metadata."""
    from edgenas.search.runs import load_run

    run_dir = Path(run_dir)
    formats = parse_formats(formats)
    try:
        precision = Precision(precision)
    except ValueError:
        raise ExportError(f"--precision must be int8 or fp32, got {precision!r}") from None
    for fmt in formats:
        fmt.require()
    resolved, evaluations, objectives = load_run(run_dir)
    if resolved.get("config", {}).get("problem"):
        raise ExportError(f"{run_dir} is a tabular benchmark search ({resolved['config']['problem']}): its cells are "
                          "lookups with no trained networks to export")
    if "space" not in resolved or "data" not in resolved:
        raise ExportError(f"{run_dir}/config.json is missing or incomplete: the run cannot be rebuilt")
    chosen = select_members(evaluations, objectives, members)
    out = Path(out) if out else Path("export") / run_dir.resolve().name
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    log(f"exporting {len(chosen)} member(s) of {run_dir} as {', '.join(f.name for f in formats)} ({precision.value}) into {out}")
    ctx = _load_context(run_dir, resolved)
    ctx.evaluations = evaluations
    if measure_latency and ctx.device.get("transport", "local") == "local" and format_for_runtime(ctx.device.get("runtime", "")):
        from edgenas.hardware.devices import device_from_dict
        from edgenas.hardware.drift import recalibrated_table
        from edgenas.hardware.predict import Predictor

        table, ctx.drift = recalibrated_table(resolved.get("table"), device_from_dict(ctx.device, "run device"),
                                              drift_check, log)
        if ctx.drift is not None:
            ctx.predictor = Predictor(table, ctx.space, ctx.data.in_channels, ctx.data.num_classes,
                                      precision=ctx.precision)
    reports = []
    for n, ev in enumerate(chosen, 1):
        log(f"[{n}/{len(chosen)}] member {ev.id}: {ev.arch}")
        report = MemberReport(ev.id, ev.arch)
        final = out / f"member-{ev.id}"
        staging = out / f".member-{ev.id}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _export_member(ctx, ev, formats, precision, staging, report, measure_latency, max_drop_pct, log)
            shutil.rmtree(final, ignore_errors=True)
            staging.replace(final)
            report.bundle = str(final)
        except Exception as exc:  # noqa: BLE001 - one member's failure, whatever it is, spares the others
            report.status, report.reason = "failed", f"{type(exc).__name__}: {exc}"
            shutil.rmtree(staging, ignore_errors=True)
            log(f"member {ev.id} failed: {report.reason}")
        reports.append(report)
    summary = {"run": str(run_dir), "formats": [f.name for f in formats], "precision": precision.value, "edgenas": __version__,
               "members": [asdict(r) for r in reports]}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return out, reports


def _member_model(ctx: _RunContext, ev, arch, report: MemberReport, max_drop_pct: float, log):
    """The member's torch model with the weights the search trained, or retrained with the run's recipe."""
    import torch

    from edgenas.nn.model import build_model
    from edgenas.nn.train import load_weights, train_candidate
    from edgenas.search.config import SearchConfig
    from edgenas.search.runs import weights_path

    space, data = ctx.space, ctx.data
    path = weights_path(ctx.run_dir, ev.weights) if ev.weights else None
    if path is not None and path.is_file():
        model = build_model(space, arch, data.num_classes, data.in_channels)
        model.load_state_dict(load_weights(path))
    elif ctx.resolved["config"].get("supernet"):  # a supernet search: the subnet's weights, as measured
        model = ctx.loaded_supernet().model(arch)
        report.notes.append(f"weights of the subnet of supernet {ctx.resolved['config']['supernet']}")
    else:  # the search's recipe, seed and thread count, from scratch with all the epochs its lineage had
        config = SearchConfig.from_saved(ctx.resolved["config"])
        seed = ev.seed or 0
        budget = config.training_budget(len(ctx.train[1]))
        epochs = max(budget.epochs, _lineage_epochs(ctx.evaluations, ev))
        note = (f"retrained from scratch: the run kept no weights for this member ({epochs} epochs, "
                f"{budget.steps(epochs)} steps, seed {seed})")
        log(note)
        report.notes.append(note)
        train_cfg = replace(config.train_config(config.worker_threads()[1], budget, data.in_channels), epochs=epochs)
        torch.manual_seed(seed)
        model = build_model(space, arch, data.num_classes, data.in_channels)
        result = train_candidate(model, ctx.train, ctx.val, train_cfg, seed)
        if result.status != "ok":
            raise ExportError(f"retraining failed: {result.reason}")
        if ev.accuracy is not None and 100 * (ev.accuracy - (result.accuracy or 0.0)) > max_drop_pct:
            raise ExportError(
                f"retrained accuracy {100 * (result.accuracy or 0):.2f}% is {100 * (ev.accuracy - result.accuracy):.2f} "
                f"points below the search's {100 * ev.accuracy:.2f}% (more than --max-drop {max_drop_pct:g}): this is "
                "not the network the search measured; keep the run's weights/ folder to export it")
    return model


def _export_member(ctx: _RunContext, ev, formats, precision: Precision, folder: Path, report: MemberReport,
                   measure_latency: bool, max_drop_pct: float, log) -> None:
    import torch

    from edgenas.nn.train import evaluate_accuracy
    from edgenas.standalone import bundle_runner

    folder.mkdir(parents=True)
    arch = ctx.space.parse(ev.arch)
    model = _member_model(ctx, ev, arch, report, max_drop_pct, log)
    model.eval()
    report.torch_accuracy = evaluate_accuracy(model, *ctx.val)
    if ev.accuracy is not None and abs(report.torch_accuracy - ev.accuracy) > 1e-9 and not report.notes:
        report.notes.append(f"torch accuracy {100 * report.torch_accuracy:.2f}% differs from the search's "
                            f"{100 * ev.accuracy:.2f}%")
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(ctx.val[0])).numpy()
    torch_top1 = torch_logits.argmax(1)
    nhwc = ctx.val[0].transpose(0, 2, 3, 1)  # the runner's layout for every format
    shape = model.input_shape
    precisions = [Precision.FP32] + ([Precision.INT8] if precision is Precision.INT8 else [])
    for fmt in formats:
        for prec in precisions:
            name = fmt.file_name(prec)
            target = folder / name
            fmt.write(model, shape, target, prec, ctx.calibration, folder / fmt.file_name(Precision.FP32))
            runtime_model = bundle_runner.open_model(str(target), threads=1)
            logits = np.concatenate([runtime_model(nhwc[i : i + 1]) for i in range(len(nhwc))])
            file = FileReport(name, fmt.name, prec.value, round(target.stat().st_size / 1024, 2),
                              accuracy=float(np.mean(logits.argmax(1) == ctx.val[1])),
                              agreement=float(np.mean(logits.argmax(1) == torch_top1)))
            if prec is Precision.FP32:
                file.max_abs_diff = float(np.abs(logits - torch_logits).max())
                if file.max_abs_diff > fmt.fp32_tolerance:
                    raise ExportError(f"{name} differs from torch by {file.max_abs_diff:.3g} (allowed "
                                      f"{fmt.fp32_tolerance:g})")
                if fmt.check is not None:
                    fmt.check(model, target, ctx.val[0])
            if measure_latency:
                _local_latency(ctx, ev, arch, fmt, prec, target, file)
            report.files.append(file)
            log(f"  {name}: {file.size_kb:.1f} KiB, accuracy {100 * file.accuracy:.2f}%"
                + (f", {file.latency_ms:.3f} ms here" if file.latency_ms is not None else "")
                + (f" (predicted {file.predicted_latency_ms:.3f} ms)" if file.predicted_latency_ms is not None else ""))
        if precision is Precision.INT8:
            by_name = {f.file: f for f in report.files}
            fp32, int8 = by_name[fmt.file_name(Precision.FP32)], by_name[fmt.file_name(Precision.INT8)]
            drop = 100 * (fp32.accuracy - int8.accuracy)
            if drop > max_drop_pct:
                report.status = "flagged"
                report.reason = (f"{fmt.name} int8 loses {drop:.2f} accuracy points against fp32 (limit {max_drop_pct:g}); "
                                 "check before shipping")
                log(f"  flagged: {report.reason}")
    _write_bundle_files(ctx, ev, arch, model, folder, report, precision, formats)


def _local_latency(ctx: _RunContext, ev, arch, fmt: ExportFormat, prec: Precision, target: Path, file: FileReport) -> None:
    """Time ``target`` on this machine; attach the prediction when the run's device is this machine's runtime."""
    from edgenas.hardware.devices import get_device

    device = get_device(fmt.local_device)
    file.latency_ms = time_model_files(device, [target], arch.resolution)[0]
    run_device = ctx.device
    if (run_device.get("transport", "local") == "local" and run_device.get("runtime") == fmt.runtime
            and prec is ctx.precision and "latency" in ev.objectives):
        file.predicted_latency_ms = (float(ev.objectives["latency"]) if ctx.predictor is None else
                                     ctx.predictor.predict(arch).latency_ms)


def time_model_files(device, files: Sequence[Path], resolution: int, quiet: bool = True) -> list[float]:
    """Latency (ms) of model files on ``device``, timed in the same shuffled rounds by the profiling agent.

    The statistic is profiling's (the fastest round's median), so measured and
    predicted latencies are comparable; timing several files together makes
    their ratios robust to a machine whose speed drifts.
    """
    from edgenas.hardware.profile import MeasurementSettings, ModelSpec, latency_statistic, measure

    settings = MeasurementSettings()
    settings = MeasurementSettings(runs_per_round=settings.runs_for(None, resolution))
    with tempfile.TemporaryDirectory(prefix="edgenas-time-") as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        specs = []
        for i, path in enumerate(files):
            name = f"{i}-{Path(path).name}"
            shutil.copyfile(path, models / name)
            specs.append(ModelSpec(str(i), name))
        result = measure(device, None, specs, Precision.FP32, 0, 0, settings, Path(tmp), quiet=quiet)
    return [latency_statistic(result["results"][s.id]["rounds_ms"]) for s in specs]


def _write_bundle_files(ctx: _RunContext, ev, arch, model, folder: Path, report: MemberReport,
                        precision: Precision, formats) -> None:
    from edgenas.search.objectives import Objective
    from edgenas.standalone import bundle_runner

    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(ctx.val[1]), size=min(SAMPLES, len(ctx.val[1])), replace=False))
    images = ctx.raw_val[pick].transpose(0, 2, 3, 1).astype(np.float32)  # H x W x C in [0, 1]
    np.savez(folder / "samples.npz", images=images, labels=ctx.val[1][pick].astype(np.int64))
    shutil.copyfile(bundle_runner.__file__, folder / "run.py")
    deployed = [fmt.file_name(precision) for fmt in formats]
    predicted = {o.column: float(ev.objectives[o.value]) for o in Objective
                 if o is not Objective.ERROR and ev.objectives.get(o.value) is not None}
    accuracy = {f.file: f.accuracy for f in report.files}
    metadata = {
        "format_version": 1,
        "edgenas": __version__,
        "member": ev.id,
        "architecture": ev.arch,
        "input": {"channels": ctx.data.in_channels, "resolution": arch.resolution, "dtype": "float32",
                  "layout": {fmt.name: fmt.layout for fmt in formats}, "range": "[0, 1] before normalisation"},
        "normalization": {"mean": [float(v) for v in ctx.mean], "std": [float(v) for v in ctx.std]},
        "preprocessing": {**PREPROCESSING, "mode": "RGB" if ctx.data.in_channels == 3 else "L"},
        "labels": [str(c) for c in ctx.data.classes],
        "data": ctx.resolved["config"]["data"],
        "precision": precision.value,
        "default_models": deployed,
        "files": [f.file for f in report.files],
        "predicted": {"device": ctx.device.get("name"), "runtime": ctx.device.get("runtime"),
                      "precision": ctx.precision.value, "table": Path(ctx.resolved.get("table") or "").name or None,
                      "table_path": ctx.resolved.get("table"), **predicted,
                      **({"latency_ms_recalibrated": ctx.predictor.predict(arch).latency_ms, "drift": ctx.drift}
                         if ctx.predictor is not None else {})},
        "accuracy": {"search": ev.accuracy, "torch": report.torch_accuracy, **accuracy},
        "verification": [asdict(f) for f in report.files],
        "status": report.status,
        "reason": report.reason,
        "notes": report.notes,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n")


# ------------------------------------------------------------------ bundles
@dataclass(frozen=True)
class DeployResult:
    """A bundle deployed: where it went, and what ``run.py --check`` and ``run.py --time`` printed there."""

    device: str
    remote: str
    model: str
    check: dict  # run.py --check --json: correct, samples, ...
    time: dict  # run.py --time --json: median_ms, p90_ms, runs, ...

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VerifyResult:
    """A bundle's model timed on a device against its predicted latency.  ``comparable`` is False where the
    prediction is for another runtime or precision (then ``ratio`` and ``within_tolerance`` are None)."""

    device: str
    model: str
    measured_ms: float
    predicted_ms: float | None
    predicted_for: str | None
    comparable: bool
    drift: dict | None = None
    ratio: float | None = None
    within_tolerance: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def read_bundle(bundle: str | Path) -> dict:
    bundle = Path(bundle)
    meta = bundle / "metadata.json"
    if not meta.is_file():
        raise ExportError(f"{bundle} is not a bundle (no metadata.json); export one with: edgenas export RUN")
    try:
        data = json.loads(meta.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{meta} is not valid JSON ({exc}); export the bundle again") from None
    if not isinstance(data, dict) or data.get("format_version") != 1:
        version = data.get("format_version") if isinstance(data, dict) else None
        raise ExportError(f"{meta} has format version {version!r}; this edgenas reads version 1")
    checks = {"architecture": str, "precision": str, "files": list, "labels": list, "input": dict, "predicted": dict}
    wrong = [k for k, kind in checks.items() if not isinstance(data.get(k), kind)]
    if not wrong and not all(isinstance(data["input"].get(k), int) for k in ("channels", "resolution")):
        wrong = ["input.channels/resolution"]
    if wrong:
        raise ExportError(f"{meta} lacks or mistypes {', '.join(wrong)}: it is not a complete bundle; export it again "
                          "with: edgenas export RUN")
    return data


def _bundle_model(bundle: Path, meta: dict, device, model: str | None) -> str:
    if model:
        if model not in meta["files"]:
            raise ExportError(f"the bundle has no model {model}; it has {', '.join(map(str, meta['files']))}")
        wanted = model
    else:
        fmt = format_for_runtime(device.runtime)
        if fmt is None:
            raise ExportError(f"device {device.name} runs {device.runtime}, which no export format targets; pick a "
                              "file with --model")
        wanted = f"model.{meta['precision']}{fmt.suffix}"
        if wanted not in meta["files"]:
            raise ExportError(f"device {device.name} runs {device.runtime}, but the bundle has no {wanted}; export "
                              f"with --formats {fmt.name}, or pick a file with --model")
    if not (bundle / wanted).is_file():
        raise ExportError(f"{bundle / wanted} is missing although metadata.json lists it; export the bundle again")
    return wanted


def deploy_bundle(bundle: str | Path, device_name: str, model: str | None = None) -> DeployResult:
    """Copy ``bundle`` to the device, then run ``run.py --check`` and ``run.py --time`` there."""
    from edgenas.hardware.devices import get_device
    from edgenas.hardware.transports import make_transport

    bundle = Path(bundle)
    meta = read_bundle(bundle)
    device = get_device(device_name)
    if device.kind == "adb":
        raise ExportError("deploying to Android (adb) is not supported: bundles need Python on the device; "
                          "time the .tflite with benchmark_model, or use an ssh device")
    name = _bundle_model(bundle, meta, device, model)
    transport = make_transport(device, local_workdir=str(bundle.resolve()))
    remote = str(bundle.resolve()) if device.kind == "local" else transport.path("bundles", bundle.resolve().name)
    transport.push_dir(bundle, remote)
    runner = f"{remote}/run.py"
    threads = str(device.threads)
    check = json.loads(transport.run([transport.python(), runner, "--check", "--json", "--model", name,
                                      "--threads", threads]).stdout)
    timing = json.loads(transport.run([transport.python(), runner, "--time", "--json", "--model", name,
                                       "--threads", threads]).stdout)
    return DeployResult(device.name, remote, name, check, timing)


def verify_bundle(bundle: str | Path, device_name: str, model: str | None = None, tolerance: float = 0.2,
                  quiet: bool = False, drift_check: bool | None = None, log: Callable[[str], None] = stderr_log) -> VerifyResult:
    """Time the bundle's model on the device (the profiling agent) and compare with the predicted latency.

    Where the bundle's table is on this machine and the device is local (or ``drift_check=True``), the table's
    anchors are timed again first and the prediction uses the refitted calibration (``result["drift"]``)."""
    from edgenas.hardware.devices import get_device
    from edgenas.space.genome import Architecture

    bundle = Path(bundle)
    meta = read_bundle(bundle)
    device = get_device(device_name)
    name = _bundle_model(bundle, meta, device, model)
    precision = Precision("int8" if ".int8." in name else "fp32")
    arch = Architecture.parse(meta["architecture"])
    measured = time_model_files(device, [bundle / name], arch.resolution, quiet=quiet)[0]
    predicted = meta["predicted"].get("latency_ms")
    comparable = (predicted is not None and meta["predicted"].get("precision") == precision.value
                  and meta["predicted"].get("runtime") == device.runtime)
    drift = None
    if comparable:
        from edgenas.hardware.drift import recalibrated_table
        from edgenas.hardware.predict import Predictor

        table, drift = recalibrated_table(meta["predicted"].get("table_path") or meta["predicted"].get("table"),
                                          device, drift_check, log)
        if drift is not None:
            space = table.search_space().with_choices(resolutions=[arch.resolution])
            predicted = Predictor(table, space, meta["input"]["channels"], len(meta["labels"]),
                                  precision=precision).predict(space.parse(meta["architecture"])).latency_ms
    ratio = measured / predicted if comparable else None
    return VerifyResult(device.name, name, measured, predicted, meta["predicted"].get("device"), comparable, drift,
                        ratio, abs(ratio - 1) <= tolerance if ratio is not None else None)

