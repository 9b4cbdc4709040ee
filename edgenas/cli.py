"""The ``edgenas`` command: a thin layer over the library functions the tests also call."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from edgenas import __version__
from edgenas.errors import ArchitectureError, EdgenasError

DESCRIPTION = "Hardware-aware multi-objective neural architecture search for edge devices."

EPILOG = """\
workflow (three steps, possibly on different machines):
  1. profile  time every op of a search space on the device itself (ONNX Runtime,
              LiteRT; locally, over ssh or adb) -> latency_tables/<device>.json
  2. search   find the Pareto front of networks that balance accuracy, latency,
              energy, peak memory and size on that device (LEMONADE, NSGA-II,
              penalized RL, random search)
  3. export   write int8 ONNX/TFLite bundles of front members; deploy and verify
              them on the device

examples:
  edgenas search                            the default run: bundled digits, small space, this machine
  edgenas search --data npz:my.npz --objectives error,latency --max-latency-ms 2 --budget 100
  edgenas search --problem nb201:cifar100:pixel3 --budget 300
                                            a tabular benchmark: lookups instead of training
  edgenas problems list                     its datasets and devices
  edgenas front runs/RUN                    print a run's Pareto front
  edgenas report runs/RUN                   a self-contained HTML report (runs/RUN/report.html)
  edgenas report R1 R2 --compare --out c.html   fronts and hypervolume of several runs
  edgenas devices list                      the shipped device descriptions
  edgenas profile --device local-ort --space small --resolution 8 --in-channels 1
                                            time every op there -> latency_tables/*.json
  edgenas tables list                       the tables in latency_tables/
  edgenas tables validate TABLE             predicted vs measured latency of random networks
  edgenas tables recalibrate TABLE          re-time the table on the device now (devices drift)
  edgenas spaces list                       the preset search spaces
  edgenas spaces show small                 a space's stages, choices, fingerprint, op count
  edgenas arch sample --space small -n 3    random architectures of a space
  edgenas arch show ARCH --space small      an architecture's ops, parameters, MACs, size, memory
  edgenas arch export ARCH --out m.onnx     build it (untrained) and export it to ONNX, checked
                                            against torch in ONNX Runtime

  edgenas export runs/RUN                   int8 ONNX (and --formats tflite) bundles of the front
  edgenas deploy BUNDLE --device D          copy a bundle to a device and run its checks there
  edgenas verify BUNDLE --device D          measured vs predicted latency on the device

Add --debug before the command to see a traceback on errors.
"""


def _add_space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="small", help="preset name or .yaml/.toml file (default: small)")
    p.add_argument(
        "--resolution", type=int, nargs="+", metavar="R", help="replace the space's input-resolution choices"
    )
    p.add_argument("--width", type=float, nargs="+", metavar="W", help="replace the space's width-multiplier choices")


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-channels", type=int, default=3, help="input image channels (default: 3)")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise EdgenasError(f"{name} must be a positive integer, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract: ``edgenas: error: ...`` and exit status 1."""

    def error(self, message: str):  # type: ignore[override]
        print(f"edgenas: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgenas", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"edgenas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_spaces_command(sub)
    _add_arch_command(sub)
    _add_devices_command(sub)
    _add_profile_command(sub)
    _add_search_command(sub)
    _add_problems_command(sub)
    _add_report_command(sub)
    _add_front_command(sub)
    _add_exp_command(sub)
    _add_deploy_command(sub)
    _add_verify_command(sub)
    _add_tables_command(sub)
    return parser


def _add_spaces_command(sub) -> None:
    spaces = sub.add_parser("spaces", help="inspect search spaces", description="Inspect search spaces.")
    spaces_sub = spaces.add_subparsers(dest="action", metavar="ACTION", required=True)
    spaces_sub.add_parser("list", help="list the preset spaces")
    show = spaces_sub.add_parser("show", help="describe a space (preset name or .yaml/.toml file)")
    show.add_argument("space", help="preset name or space file")
    show.add_argument("--resolution", type=int, nargs="+", metavar="R", help="replace the resolution choices")
    show.add_argument("--width", type=float, nargs="+", metavar="W", help="replace the width-multiplier choices")
    _add_task_args(show)
    show.add_argument("--json", action="store_true", help="print the definition as JSON")


def _add_arch_command(sub) -> None:
    arch = sub.add_parser(
        "arch",
        help="sample, inspect and export architectures",
        description="Architectures print as r<resolution>-w<width>-[<blocks>]..., e.g. r32-w1-[k3e6,k5e4][k3e3]...",
    )
    arch_sub = arch.add_subparsers(dest="action", metavar="ACTION", required=True)
    sample = arch_sub.add_parser("sample", help="print random architectures of a space")
    _add_space_args(sample)
    sample.add_argument("-n", type=int, default=5, help="how many (default: 5)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    ashow = arch_sub.add_parser("show", help="ops and analytic costs of an architecture")
    ashow.add_argument("arch", help="architecture string")
    _add_space_args(ashow)
    _add_task_args(ashow)
    ashow.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="deployed precision (default: int8)")
    ashow.add_argument("--json", action="store_true", help="print one JSON object")

    export = arch_sub.add_parser(
        "export", help="build an (untrained) architecture and export it to ONNX, checked in ONNX Runtime"
    )
    export.add_argument("arch", help="architecture string")
    _add_space_args(export)
    _add_task_args(export)
    export.add_argument("--out", required=True, help="path of the .onnx file to write")
    export.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")


def _add_devices_command(sub) -> None:
    devices = sub.add_parser("devices", help="list and show device descriptions", description="Device descriptions.")
    devices_sub = devices.add_subparsers(dest="action", metavar="ACTION", required=True)
    devices_sub.add_parser("list", help="list the shipped devices")
    dshow = devices_sub.add_parser("show", help="show a device (shipped name or .yaml file)")
    dshow.add_argument("device")


def _add_profile_command(sub) -> None:
    profile = sub.add_parser(
        "profile",
        help="time every op of a search space on a device and write its latency table",
        description=(
            "Build one small model per distinct op of the space (plus an overhead model and a few whole "
            "networks for calibration), time them on the device in shuffled, interleaved rounds, and write "
            "a latency table. An interrupted profile resumes when run again with the same arguments."
        ),
    )
    profile.add_argument("--device", default="local-ort", help="shipped device name or .yaml file (default: local-ort)")
    _add_space_args(profile)
    _add_task_args(profile)
    profile.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="precision of the op models (default: fp32)")
    profile.add_argument("--out", help="table path (default: latency_tables/<device>_<space>-r<res>_<task>_<precision>.json)")
    profile.add_argument("--rounds", type=int, default=5, help="timing rounds (default: 5)")
    profile.add_argument("--runs", type=int, help="timed runs per model and round (default: 20, or 6 above 64x64)")
    profile.add_argument("--calibration-networks", type=int, default=8, help="whole networks timed for calibration (default: 8)")
    profile.add_argument("--seed", type=int, default=0, help="seed of the shuffled order and calibration networks")
    profile.add_argument("--quiet", action="store_true", help="no progress bars")


_TYPES = {"int": int, "float": float, "str": str}


def add_setting_flags(parser: argparse.ArgumentParser, config_class) -> None:
    """One flag per field of ``config_class`` (a dataclass declared with :func:`edgenas.search.setting`): the flag,
    type, default, choices and help come from the field's declaration, so they cannot drift from it."""
    from dataclasses import MISSING, fields

    from edgenas.search import setting_flag

    for f in fields(config_class):
        meta = f.metadata
        if "help" not in meta:
            continue
        flag = setting_flag(f)
        text = meta["help"]() if callable(meta["help"]) else meta["help"]
        default = None if f.default is MISSING else f.default
        if default is not None and "(default" not in text:
            text += f" (default: {default})"
        if meta.get("kind") is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        kind = _TYPES[str(f.type).split("|")[0].strip()]
        parser.add_argument(flag, dest=f.name, type=kind, default=default, help=text,
                            choices=list(meta["choices"]) if meta.get("choices") else None, metavar=meta.get("metavar"))


def _add_search_command(sub) -> None:
    from edgenas.search import SearchConfig

    search = sub.add_parser(
        "search",
        help="search the Pareto front of accurate, fast, small networks for a device",
        description=(
            "Search for the architectures that balance accuracy against latency, energy, memory and size on "
            "a device. With no arguments: the bundled digits data, the small space at 8x8, this machine with "
            "ONNX Runtime (a shipped latency table, or one profiled on first use), LEMONADE, 64 trained networks. "
            "Images are centre-cropped to a square and resized to --resolution (default: their size, at most the "
            "space's largest resolution). Every network trained from scratch takes at least --min-steps optimizer "
            "steps (more epochs and smaller batches on small data). "
            "Results go to a run folder: archive.sqlite, front.csv/json, hypervolume.csv, pareto.png, report.html."
        ),
    )
    add_setting_flags(search, SearchConfig)
    search.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.add_argument("--no-report", dest="report", action="store_false",
                        help="do not write report.html into the run folder (default: refreshed after a generation, "
                             "at most every 5 s, and at the end)")


def _add_problems_command(sub) -> None:
    problems = sub.add_parser("problems", help="list the tabular benchmark problems (datasets x devices)",
                              description="Tabular benchmark problems for edgenas search --problem.")
    problems_sub = problems.add_subparsers(dest="problems_command", metavar="{list}", required=True)
    plist = problems_sub.add_parser("list", help="datasets and devices of the benchmark file")
    plist.add_argument("--problem-data", metavar="FILE", help="another benchmark file of the same layout")
    plist.add_argument("--json", action="store_true", help="print JSON")


def _add_report_command(sub) -> None:
    report = sub.add_parser(
        "report", help="write a self-contained HTML report of a run, or compare runs",
        description="Write one self-contained HTML page (no network access needed): the settings, device and table, "
                    "an interactive Pareto front, hypervolume history, every evaluation, exported members. With "
                    "--compare, several runs' fronts and hypervolume curves on shared axes.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s)")
    report.add_argument("--out", help="output file (default: RUN/report.html; required with --compare)")
    report.add_argument("--compare", action="store_true", help="compare the runs (same objectives)")
    report.add_argument("--bundles", metavar="DIR", help="exported bundles of the run (default: export/<run name>)")


def _add_front_command(sub) -> None:
    front = sub.add_parser("front", help="print the Pareto front of a search run")
    front.add_argument("run", help="run folder")
    front.add_argument("--json", action="store_true", help="print JSON")


def _add_exp_command(sub) -> None:
    exp = sub.add_parser(
        "export",
        help="export front members as verified int8/fp32 ONNX and TFLite bundles",
        description=(
            "Rebuild members of a search run with their trained weights and write one bundle each: the model "
            "files (fp32, and int8 when --precision int8), metadata.json, sample images and run.py, a runner that "
            "needs only numpy and one runtime. Every file is checked in its runtime: outputs against torch, "
            "validation accuracy (an int8 drop above --max-drop points flags the member), size, and latency on "
            "this machine against the table's prediction. A summary table closes the command; it exits 1 if a "
            "member failed."
        ),
    )
    exp.add_argument("run", help="run folder")
    exp.add_argument("--members", default="front", help="'front' (default) or archive ids, e.g. 3,17 (see edgenas front)")
    exp.add_argument("--formats", default="onnx", help="onnx, tflite or onnx,tflite (default: onnx; tflite needs "
                     "pip install 'edgenas[tflite]')")
    exp.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="deployed precision (default: int8)")
    exp.add_argument("--out", help="output folder (default: export/<run name>)")
    exp.add_argument("--max-drop", type=float, default=1.0,
                     help="flag members whose int8 accuracy drops more points than this (default: 1)")
    exp.add_argument("--no-latency", action="store_true", help="skip timing the files on this machine")
    exp.add_argument("--drift-check", action=argparse.BooleanOptionalAction, default=None,
                     help="re-time the run's table's anchors before comparing measured and predicted latency "
                          "(default: on when the run's device is this machine)")


def _add_deploy_command(sub) -> None:
    deploy = sub.add_parser("deploy", help="copy a bundle to a device and run it there (sample check and timing)")
    deploy.add_argument("bundle", help="bundle folder (export/<run>/member-<id>)")
    deploy.add_argument("--device", default="local-ort", help="shipped device name or .yaml file (default: local-ort)")
    deploy.add_argument("--model", help="model file of the bundle (default: the deployed precision for the device's runtime)")
    deploy.add_argument("--json", action="store_true", help="print one JSON object")


def _add_verify_command(sub) -> None:
    verify = sub.add_parser("verify", help="time a bundle's model on a device and compare with the predicted latency")
    verify.add_argument("bundle", help="bundle folder (export/<run>/member-<id>)")
    verify.add_argument("--device", default="local-ort", help="shipped device name or .yaml file (default: local-ort)")
    verify.add_argument("--model", help="model file of the bundle (default: the deployed precision for the device's runtime)")
    verify.add_argument("--tolerance", type=float, default=0.2,
                        help="largest accepted relative error of the prediction (default: 0.2); exit 1 beyond it")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    verify.add_argument("--drift-check", action=argparse.BooleanOptionalAction, default=None,
                        help="re-time the bundle's table's anchors on the device first and predict with the refitted "
                             "calibration (default: on for local devices, where the table is on this machine)")


def _add_tables_command(sub) -> None:
    tables = sub.add_parser("tables", help="list, show, validate and recalibrate latency tables",
                            description="Latency tables.")
    tables_sub = tables.add_subparsers(dest="action", metavar="ACTION", required=True)
    tlist = tables_sub.add_parser("list", help="list tables (shipped and in ./latency_tables)")
    tlist.add_argument("folder", nargs="?", help="another folder of tables")
    tshow = tables_sub.add_parser("show", help="header and entries of a table")
    tshow.add_argument("table")
    tshow.add_argument("--entries", action="store_true", help="also print every entry")
    recal = tables_sub.add_parser(
        "recalibrate", help="re-time the table's anchor networks on the device now and refit its calibration",
        description="Re-time the table's anchor networks (the whole networks profiling timed directly) and its "
                    "per-call overhead model on the device now (and, unless --anchors-only, every op, from cached "
                    "models), refit the calibration (scale and call overhead), and write the table back atomically, "
                    "the previous calibration kept in calibration.history. Devices drift (throttling, governors, "
                    "load): run it on the day of use. Seconds, not minutes.")
    recal.add_argument("table")
    recal.add_argument("--device", help="device to measure on (default: the one in the table)")
    recal.add_argument("--rounds", type=int, default=5, help="shuffled timing rounds (default: 5)")
    recal.add_argument("--anchors-only", action="store_true",
                       help="re-time only the anchors and the overhead and refit the scale (faster; by default every "
                            "op is timed again too, from cached models)")
    recal.add_argument("--json", action="store_true", help="print one JSON object")
    recal.add_argument("--quiet", action="store_true", help="no progress bars")
    validate = tables_sub.add_parser(
        "validate", help="measure random whole networks on the table's device and compare with predictions"
    )
    validate.add_argument("table")
    validate.add_argument("--samples", type=int, default=30, help="random architectures (default: 30)")
    validate.add_argument("--seed", type=int, default=1, help="seed of the architectures (default: 1)")
    validate.add_argument("--device", help="device to measure on (default: the one in the table)")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--quiet", action="store_true", help="no progress bars")

def _space(args: argparse.Namespace):
    from edgenas.space import get_space

    space = get_space(args.space)
    if getattr(args, "resolution", None) or getattr(args, "width", None):
        space = space.with_choices(args.resolution, args.width)
    return space


def _arch(space, text: str):
    try:
        return space.parse(text)
    except ArchitectureError as exc:
        if "gene resolution" in str(exc) or "gene width" in str(exc):
            raise ArchitectureError(f"{exc}; use --resolution/--width to change the space's choices") from None
        raise


def cmd_spaces(args: argparse.Namespace) -> int:
    from edgenas.ops import OpIndex
    from edgenas.space import get_space, list_spaces

    if args.action == "list":
        for name in list_spaces():
            space = get_space(name)
            print(f"{name:10s} {space.fingerprint}  {space.description}")
        return 0
    space = _space(args)
    n_ops = len(OpIndex(space, _positive("--in-channels", args.in_channels), _positive("--num-classes", args.num_classes)))
    if args.json:
        print(json.dumps({**space.to_dict(), "fingerprint": space.fingerprint, "n_ops": n_ops}, indent=2))
        return 0
    for line in space.describe():
        print(line)
    print(f"ops         {n_ops} distinct (for {args.in_channels} input channels, {args.num_classes} classes)")
    return 0


def cmd_arch(args: argparse.Namespace) -> int:
    space = _space(args)
    if args.action == "sample":
        rng = np.random.default_rng(args.seed)
        for _ in range(_positive("-n", args.n)):
            print(space.sample(rng))
        return 0

    arch = _arch(space, args.arch)
    in_channels = _positive("--in-channels", args.in_channels)
    num_classes = _positive("--num-classes", args.num_classes)
    if args.action == "show":
        from edgenas.cost import architecture_cost
        from edgenas.ops import decompose

        cost = architecture_cost(space, arch, in_channels, num_classes, args.precision)
        ops = decompose(space, arch, in_channels, num_classes)
        if args.json:
            print(json.dumps({"arch": str(arch), "space": space.name, "fingerprint": space.fingerprint,
                              **cost.as_dict(), "ops": [str(k) for k in ops]}))
            return 0
        print(f"architecture {arch}")
        print(f"space        {space.name} (fingerprint {space.fingerprint})")
        print(f"input        {in_channels}x{arch.resolution}x{arch.resolution}, {num_classes} classes")
        print(f"params       {cost.params:,}")
        print(f"MACs         {cost.macs / 1e6:,.2f} M")
        print(f"size         {cost.size_kb:,.1f} KiB ({cost.precision.value})")
        print(f"peak memory  {cost.peak_memory_kb:,.1f} KiB ({cost.precision.value})")
        print(f"ops          {len(ops)}")
        for key in ops:
            print(f"  {key}")
        return 0

    # export
    import torch

    from edgenas.model import build_model, export_onnx, onnx_matches_torch

    torch.manual_seed(args.seed)
    model = build_model(space, arch, num_classes, in_channels)
    path = export_onnx(model, model.input_shape, args.out)
    inputs = np.random.default_rng(args.seed).standard_normal((4, *model.input_shape)).astype(np.float32)
    diff = onnx_matches_torch(model, path, inputs)
    print(f"wrote {path} (untrained weights); ONNX Runtime matches torch, max abs difference {diff:.2e}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from edgenas.devices import get_device, list_devices

    if args.action == "list":
        for device in list_devices():
            print(f"{device.name:18s} {device.transport:28s} {device.runtime:12s} {device.description}")
        return 0
    for line in get_device(args.device).describe():
        print(line)
    return 0


def _progress_log(message: str) -> None:
    print(f"edgenas: {message}", file=sys.stderr)


def cmd_profile(args: argparse.Namespace) -> int:
    from edgenas.devices import get_device
    from edgenas.profile import MeasurementSettings, profile_device

    device = get_device(args.device)
    space = _space(args)
    for name in ("rounds", "calibration_networks"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.runs is not None:
        _positive("--runs", args.runs)
    settings = MeasurementSettings(
        rounds=args.rounds, runs_per_round=args.runs, calibration_networks=args.calibration_networks, seed=args.seed
    )
    table = profile_device(
        device, space, args.precision, _positive("--in-channels", args.in_channels),
        _positive("--num-classes", args.num_classes), args.out, settings, quiet=args.quiet, log=_progress_log,
    )
    energy = f"energy from {table.energy_source}" if table.energy_source else "no energy source on this device"
    print(f"wrote {table.path}: {len(table.entries)} ops, overhead {table.overhead['latency_ms'] * 1000:.1f} us per call, "
          f"calibration scale {table.calibration['latency_scale']:.3f}, {energy}, {table.profiling_seconds:.0f} s")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgenas.errors import TableError
    from edgenas.tables import LatencyTable, list_tables, table_folders

    if args.action == "list":
        folders = [Path(args.folder)] if args.folder else table_folders()
        seen = set()
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in list_tables(folder):
                seen.add(path)
                try:
                    print(LatencyTable.load(path).summary())
                except TableError as exc:
                    print(f"{path.name}: unreadable ({exc})")
        if not seen:
            print("no tables found; make one with: edgenas profile")
        return 0
    table = LatencyTable.load(args.table)
    if args.action == "recalibrate":
        from edgenas.devices import get_device
        from edgenas.drift import recalibrate_table

        device = get_device(args.device) if args.device else None
        updated, check = recalibrate_table(args.table, device, rounds=_positive("--rounds", args.rounds),
                                           ops=not args.anchors_only, quiet=args.quiet)
        if args.json:
            print(json.dumps(check.record()))
        else:
            print(f"recalibrated {args.table}: {check.describe()}")
        return 0
    if args.action == "show":
        from edgenas.predict import floored_ops

        print(table.summary())
        print(f"created     {table.created} by edgenas {table.tool_version} in {table.profiling_seconds} s")
        print(f"task        {table.task['in_channels']} input channels, {table.task['num_classes']} classes")
        print(f"measurement {json.dumps(table.measurement)}")
        print(f"overhead    {table.overhead['latency_ms'] * 1000:.2f} us per call; {floored_ops(table)} of "
              f"{len(table.entries)} ops time within 5% of it (their compute time is floored)")
        print(f"calibration scale {table.calibration['latency_scale']:.4f}, call overhead "
              f"{table.call_overhead_ms * 1000:.2f} us, on {len(table.calibration.get('networks', []))} anchor networks"
              + (f"; recalibrated {table.calibration['recalibrated']} ({len(table.calibration.get('history', []))} "
                 "earlier calibration(s) in its history)" if table.calibration.get("recalibrated") else ""))
        print(f"energy      {table.energy_source or 'not measured (no energy source): energy is not offered as an objective'}")
        if args.entries:
            for key, entry in sorted(table.entries.items()):
                energy = f"  {entry.energy_mj:.5f} mJ" if entry.energy_mj is not None else ""
                print(f"  {key:45s} {entry.latency_ms:10.5f} ms  +-{entry.spread_ms:.5f}  n={entry.runs}{energy}")
        return 0

    from edgenas.devices import get_device
    from edgenas.validate import validate_table

    device = get_device(args.device) if args.device else None
    report = validate_table(table, _positive("--samples", args.samples), args.seed, device=device, quiet=args.quiet)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"table        {report['table']} ({report['device']}, {report['precision']}, space {report['space']} {report['resolutions']})")
    print(f"samples      {report['samples']} random architectures (seed {report['seed']}), each measured whole twice")
    print(f"within +-10% {report['within_10pct'] * 100:.1f}%   (noise ceiling: two measurements agree for {report['noise_within_10pct'] * 100:.1f}%)")
    print(f"MAPE         {report['mape_pct']:.2f}%   (noise: {report['noise_mape_pct']:.2f}%)")
    print(f"Kendall tau  {report['kendall_tau']:.3f}")
    print(f"bias         {report['bias_pct']:+.2f}% (median of predicted/measured - 1)")
    print(f"floored ops  {report['floored_ops']} op(s) time within 5% of the call overhead")
    if report["speed_ratio"] is not None:
        print(f"drift        the device ran at {1 / report['speed_ratio']:.2f}x its speed at profiling time "
              f"(timed again on the table's calibration networks)")
        print(f"corrected    within +-10% {report['within_10pct_drift_corrected'] * 100:.1f}%, "
              f"MAPE {report['mape_pct_drift_corrected']:.2f}%, bias {report['bias_pct_drift_corrected']:+.2f}% "
              "with predictions scaled by that drift")
    return 0


def _front_table(front, objectives) -> list[str]:
    header = f"{'id':>4}  {'accuracy':>8}  " + "  ".join(f"{o.column:>11}" for o in objectives if o.value != "error")
    lines = [header + "  architecture"]
    for ev in front:
        acc = f"{100 * ev.accuracy:7.2f}%" if ev.accuracy is not None else "      -"
        values = "  ".join(f"{ev.objectives[o.value]:11.4g}" for o in objectives if o.value != "error")
        lines.append(f"{ev.id:4d}  {acc:>8}  {values}  {ev.arch}")
    return lines


def cmd_search(args: argparse.Namespace) -> int:
    from edgenas.search import SearchConfig, run_search

    if args.resume and not args.run_dir:
        raise EdgenasError("--resume needs --run-dir: the run folder to continue")
    if args.problem_data and not args.problem:
        raise EdgenasError("--problem-data needs --problem nb201:DATASET:DEVICE")
    from dataclasses import fields

    config = SearchConfig(**{f.name: getattr(args, f.name) for f in fields(SearchConfig) if "help" in f.metadata})
    result = run_search(config, resume=args.resume, progress=not args.quiet, log=_progress_log, report=args.report)
    from edgenas.objectives import parse_objectives

    objectives = parse_objectives(config.resolved().objectives)
    done = (f"{result.evaluations} cells looked up" if config.problem else
            f"{result.trained} networks trained, {result.evaluations} evaluated")
    print(f"run {result.run_dir}: {done}, {result.seconds / 60:.1f} min; front of {len(result.front)}, "
          f"hypervolume {result.hypervolume:.4g}")
    for note in result.notes:
        print(f"note: {note}")
    for line in _front_table(result.front, objectives):
        print(line)
    print(f"files: {result.run_dir}/front.csv, front.json, pareto.png, hypervolume.csv, archive.sqlite"
          + (", report.html" if args.report else ""))
    return 0


def cmd_problems(args: argparse.Namespace) -> int:
    from edgenas.nb201 import TabularData

    data = TabularData.load(args.problem_data)
    datasets, devices = sorted(data.accuracy), sorted(data.latency_ms)
    if args.json:
        print(json.dumps({"data": str(data.path), "cells": len(data.archs), "datasets": datasets, "devices": devices}))
        return 0
    print(f"{data.path}: {len(data.archs):,} NAS-Bench-201 cells")
    print("datasets (best accuracy): " + ", ".join(f"{d} ({data.accuracy[d].max():.2f}%)" for d in datasets))
    print("devices (fastest-slowest cell, ms):")
    for d in devices:
        lat = data.latency_ms[d]
        print(f"  {d:16s} {lat.min():9.4g} - {lat.max():.4g}")
    print(f"use: edgenas search --problem nb201:{datasets[0]}:{devices[0]} --budget 300")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from edgenas.report import build_comparison, build_report

    if args.compare:
        if not args.out:
            raise EdgenasError("--compare needs --out FILE: the comparison page to write")
        print(f"wrote {build_comparison(args.runs, args.out)}")
        return 0
    if len(args.runs) > 1:
        raise EdgenasError("several runs need --compare (and --out FILE)")
    print(f"wrote {build_report(args.runs[0], args.out, args.bundles)}")
    return 0


def cmd_front(args: argparse.Namespace) -> int:
    from edgenas.search import load_run, pareto_front

    resolved, evaluations, objectives = load_run(args.run)
    front = pareto_front(evaluations, objectives)
    if args.json:
        print(json.dumps({"objectives": [o.value for o in objectives], "front": [
            {"id": e.id, "arch": e.arch, "accuracy": e.accuracy, **e.objectives, "weights": e.weights}
            for e in front]}))
        return 0
    trained = sum(1 for e in evaluations if e.trained)
    print(f"run {args.run}: front of {len(front)} among {trained} trained networks ({len(evaluations)} evaluated)")
    for line in _front_table(front, objectives):
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from edgenas.export import export_run

    out, reports = export_run(args.run, members=args.members, formats=args.formats, precision=args.precision,
                              out=args.out, measure_latency=not args.no_latency, max_drop_pct=args.max_drop,
                              drift_check=args.drift_check, log=_progress_log)
    print(f"{'id':>4}  {'status':7}  {'file':18}  {'KiB':>8}  {'accuracy':>8}  {'here ms':>8}  {'pred ms':>8}  architecture")
    for r in reports:
        if not r.files:
            print(f"{r.id:4d}  {r.status:7}  {'-':18}  {'':>8}  {'':>8}  {'':>8}  {'':>8}  {r.arch}")
        for f in r.files:
            here = f"{f.latency_ms:8.3f}" if f.latency_ms is not None else f"{'-':>8}"
            pred = f"{f.predicted_latency_ms:8.3f}" if f.predicted_latency_ms is not None else f"{'-':>8}"
            print(f"{r.id:4d}  {r.status:7}  {f.file:18}  {f.size_kb:8.1f}  {100 * f.accuracy:7.2f}%  {here}  {pred}  "
                  f"{r.arch}")
    for r in reports:
        if r.reason:
            print(f"member {r.id} {r.status}: {r.reason}")
        for note in r.notes:
            print(f"member {r.id}: {note}")
    ok = sum(r.status != "failed" for r in reports)
    print(f"{ok} of {len(reports)} bundle(s) in {out} (summary.json lists every check)")
    return 0 if ok == len(reports) else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    from edgenas.export import deploy_bundle

    result = deploy_bundle(args.bundle, args.device, args.model)
    if args.json:
        print(json.dumps(result))
        return 0
    check, timing = result["check"], result["time"]
    print(f"deployed {args.bundle} to {result['device']}:{result['remote']}")
    print(f"{result['model']}: {check['correct']}/{check['samples']} sample images right; median "
          f"{timing['median_ms']:.3f} ms, p90 {timing['p90_ms']:.3f} ms over {timing['runs']} runs (run.py --time)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from edgenas.export import verify_bundle

    result = verify_bundle(args.bundle, args.device, args.model, tolerance=args.tolerance, quiet=args.quiet,
                           drift_check=args.drift_check, log=_progress_log)
    if args.json:
        print(json.dumps(result))
    elif not result["comparable"]:
        print(f"{result['model']} on {result['device']}: {result['measured_ms']:.3f} ms measured; no comparable "
              f"prediction (the bundle's prediction is for {result['predicted_for']}, another runtime or precision)")
    else:
        verdict = "within" if result["within_tolerance"] else "OUTSIDE"
        print(f"{result['model']} on {result['device']}: {result['measured_ms']:.3f} ms measured, "
              f"{result['predicted_ms']:.3f} ms predicted for {result['predicted_for']} "
              f"({100 * (result['ratio'] - 1):+.1f}%, {verdict} +-{100 * args.tolerance:g}%)")
    return 0 if result.get("within_tolerance", True) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handlers = {
        "spaces": cmd_spaces, "arch": cmd_arch, "devices": cmd_devices, "profile": cmd_profile, "tables": cmd_tables,
        "search": cmd_search, "problems": cmd_problems, "report": cmd_report, "front": cmd_front, "export": cmd_export, "deploy": cmd_deploy, "verify": cmd_verify,
    }
    try:
        return handlers[args.command](args)
    except EdgenasError as exc:
        if args.debug:
            raise
        print(f"edgenas: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgenas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
