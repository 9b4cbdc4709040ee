"""``edgenas profile``: time every op of a space on a device into a latency table."""

from __future__ import annotations

import argparse

from edgenas.cli.common import (
    _add_space_args,
    _add_task_args,
    _positive,
    _space,
)
from edgenas.logs import stderr_log


def add_profile_command(sub) -> None:
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


def cmd_profile(args: argparse.Namespace) -> int:
    from edgenas.hardware.devices import get_device
    from edgenas.hardware.profile import MeasurementSettings, profile_device

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
        _positive("--num-classes", args.num_classes), args.out, settings, quiet=args.quiet, log=stderr_log,
    )
    energy = f"energy from {table.energy_source}" if table.energy_source else "no energy source on this device"
    print(f"wrote {table.path}: {len(table.entries)} ops, overhead {table.overhead.latency_ms * 1000:.1f} us per call, "
          f"calibration scale {table.calibration.latency_scale:.3f}, {energy}, {table.profiling_seconds:.0f} s")
    return 0
