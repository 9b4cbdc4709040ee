"""``edgenas search``, ``edgenas front`` and ``edgenas problems``: run a search, print its front, list tabular benchmarks."""

from __future__ import annotations

import argparse
import json

from edgenas.cli.common import (
    add_setting_flags,
)
from edgenas.errors import EdgenasError
from edgenas.logs import stderr_log


def add_search_command(sub) -> None:
    from edgenas.search.config import SearchConfig

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


def cmd_search(args: argparse.Namespace) -> int:
    from edgenas.search.config import SearchConfig
    from edgenas.search.loop import run_search

    if args.resume and not args.run_dir:
        raise EdgenasError("--resume needs --run-dir: the run folder to continue")
    if args.problem_data and not args.problem:
        raise EdgenasError("--problem-data needs --problem nb201:DATASET:DEVICE")
    from dataclasses import fields

    config = SearchConfig(**{f.name: getattr(args, f.name) for f in fields(SearchConfig) if "help" in f.metadata})
    result = run_search(config, resume=args.resume, progress=not args.quiet, log=stderr_log, report=args.report)
    from edgenas.search.objectives import parse_objectives

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


def _front_table(front, objectives) -> list[str]:
    header = f"{'id':>4}  {'accuracy':>8}  " + "  ".join(f"{o.column:>11}" for o in objectives if o.value != "error")
    lines = [header + "  architecture"]
    for ev in front:
        acc = f"{100 * ev.accuracy:7.2f}%" if ev.accuracy is not None else "      -"
        values = "  ".join(f"{ev.objectives[o.value]:11.4g}" for o in objectives if o.value != "error")
        lines.append(f"{ev.id:4d}  {acc:>8}  {values}  {ev.arch}")
    return lines


def add_front_command(sub) -> None:
    front = sub.add_parser("front", help="print the Pareto front of a search run")
    front.add_argument("run", help="run folder")
    front.add_argument("--json", action="store_true", help="print JSON")


def cmd_front(args: argparse.Namespace) -> int:
    from edgenas.search.pareto import pareto_front
    from edgenas.search.runs import load_run

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


def add_problems_command(sub) -> None:
    problems = sub.add_parser("problems", help="list the tabular benchmark problems (datasets x devices)",
                              description="Tabular benchmark problems for edgenas search --problem.")
    problems_sub = problems.add_subparsers(dest="problems_command", metavar="{list}", required=True)
    plist = problems_sub.add_parser("list", help="datasets and devices of the benchmark file")
    plist.add_argument("--problem-data", metavar="FILE", help="another benchmark file of the same layout")
    plist.add_argument("--json", action="store_true", help="print JSON")


def cmd_problems(args: argparse.Namespace) -> int:
    from edgenas.space.nb201 import TabularData

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
