"""``edgenas tables``: list, show, validate and recalibrate latency tables."""

from __future__ import annotations

import argparse
import json

from edgenas.cli.common import (
    _positive,
)


def add_tables_command(sub) -> None:
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


def cmd_tables(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgenas.errors import TableError
    from edgenas.hardware.tables import LatencyTable, list_tables, table_folders

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
        from edgenas.hardware.devices import get_device
        from edgenas.hardware.drift import recalibrate_table

        device = get_device(args.device) if args.device else None
        updated, check = recalibrate_table(args.table, device, rounds=_positive("--rounds", args.rounds),
                                           ops=not args.anchors_only, quiet=args.quiet)
        if args.json:
            print(json.dumps(check.record()))
        else:
            print(f"recalibrated {args.table}: {check.describe()}")
        return 0
    if args.action == "show":
        from edgenas.hardware.predict import floored_ops

        print(table.summary())
        print(f"created     {table.created} by edgenas {table.tool_version} in {table.profiling_seconds} s")
        print(f"host        {table.describe_host()}")
        print(f"task        {table.task['in_channels']} input channels, {table.task['num_classes']} classes")
        print(f"measurement {json.dumps(table.measurement)}")
        print(f"overhead    {table.overhead.latency_ms * 1000:.2f} us per call; {floored_ops(table)} of "
              f"{len(table.entries)} ops time within 5% of it (their compute time is floored)")
        print(f"calibration scale {table.calibration.latency_scale:.4f}, call overhead "
              f"{table.call_overhead_ms * 1000:.2f} us, on {len(table.calibration.networks)} anchor networks"
              + (f"; recalibrated {table.calibration.recalibrated} ({len(table.calibration.history)} "
                 "earlier calibration(s) in its history)" if table.calibration.recalibrated else ""))
        print(f"energy      {table.energy_source or 'not measured (no energy source): energy is not offered as an objective'}")
        if args.entries:
            for key, entry in sorted(table.entries.items()):
                energy = f"  {entry.energy_mj:.5f} mJ" if entry.energy_mj is not None else ""
                print(f"  {key:45s} {entry.latency_ms:10.5f} ms  +-{entry.spread_ms:.5f}  n={entry.runs}{energy}")
        return 0

    from edgenas.hardware.devices import get_device
    from edgenas.hardware.validate import validate_table

    device = get_device(args.device) if args.device else None
    report = validate_table(table, _positive("--samples", args.samples), args.seed, device=device, quiet=args.quiet)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(f"table        {report.table} ({report.device}, {report.precision}, space {report.space} {report.resolutions})")
    print(f"samples      {report.samples} random architectures (seed {report.seed}), each measured whole twice")
    print(f"within +-10% {report.within_10pct * 100:.1f}%   (noise ceiling: two measurements agree for {report.noise_within_10pct * 100:.1f}%)")
    print(f"MAPE         {report.mape_pct:.2f}%   (noise: {report.noise_mape_pct:.2f}%)")
    print(f"Kendall tau  {report.kendall_tau:.3f}")
    print(f"bias         {report.bias_pct:+.2f}% (median of predicted/measured - 1)")
    print(f"floored ops  {report.floored_ops} op(s) time within 5% of the call overhead")
    if report.host_changes:
        print(f"host changed since profiling: {'; '.join(report.host_changes)} (profile the device again)")
    if report.speed_ratio is not None:
        print(f"drift        the device ran at {1 / report.speed_ratio:.2f}x its speed at profiling time "
              f"(timed again on the table's calibration networks)")
        print(f"corrected    within +-10% {report.within_10pct_drift_corrected * 100:.1f}%, "
              f"MAPE {report.mape_pct_drift_corrected:.2f}%, bias {report.bias_pct_drift_corrected:+.2f}% "
              "with predictions scaled by that drift")
    return 0
