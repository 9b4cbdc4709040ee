"""``edgenas report``: a run's self-contained HTML report, or a comparison of runs."""

from __future__ import annotations

import argparse

from edgenas.errors import EdgenasError


def add_report_command(sub) -> None:
    report = sub.add_parser(
        "report", help="write a self-contained HTML report of a run, or compare runs",
        description="Write one self-contained HTML page (no network access needed): the settings, device and table, "
                    "an interactive Pareto front, hypervolume history, every evaluation, exported members. With "
                    "--compare, several runs' fronts and hypervolume curves on shared axes.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s)")
    report.add_argument("--out", help="output file (default: RUN/report.html; required with --compare)")
    report.add_argument("--compare", action="store_true", help="compare the runs (same objectives)")
    report.add_argument("--bundles", metavar="DIR", help="exported bundles of the run (default: export/<run name>)")


def cmd_report(args: argparse.Namespace) -> int:
    from edgenas.search.report import build_comparison, build_report

    if args.compare:
        if not args.out:
            raise EdgenasError("--compare needs --out FILE: the comparison page to write")
        print(f"wrote {build_comparison(args.runs, args.out)}")
        return 0
    if len(args.runs) > 1:
        raise EdgenasError("several runs need --compare (and --out FILE)")
    print(f"wrote {build_report(args.runs[0], args.out, args.bundles)}")
    return 0
