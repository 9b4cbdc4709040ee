"""Parsing the output of TFLite's ``benchmark_model`` tool (used on Android devices over adb).

Two formats are understood.  Newer builds print a statistics line for the
warm-up and one for the timed runs, then a summary::

    INFO: count=50 first=1249964 curr=1240143 min=1238588 max=1252566 avg=1.24027e+06 std=2565 p5=1238753 median=1239807 p95=1247415
    INFO: Inference timings in us: Init: 5579, First inference: 1357602, Warmup (avg): 1.3576e+06, Inference (avg): 1.24027e+06

Older builds print the statistics without percentiles and a summary line::

    count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896
    Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722

(or ``..., Inference: 80660.1``).  All times are microseconds.  The latency
reported is the median of the timed runs when the tool prints it, else their
average.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgenas.errors import DeviceError

__all__ = ["BenchmarkStats", "parse_benchmark_model"]

_NUM = r"([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
_STATS = re.compile(r"count=(\d+)(?P<rest>.*)")
_NEW = re.compile(
    rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, Warmup \(avg\): {_NUM}, Inference \(avg\): {_NUM}"
)
_OLD = re.compile(rf"Average inference timings in us: Warmup: {_NUM}, Init: {_NUM}, (?:no stats|Inference): {_NUM}")


@dataclass(frozen=True)
class BenchmarkStats:
    latency_us: float  # median of timed runs if printed, else their average
    avg_us: float
    count: int | None
    std_us: float | None
    median_us: float | None
    init_us: float | None


def _field(rest: str, name: str) -> float | None:
    m = re.search(rf"\b{name}={_NUM}", rest)
    return float(m.group(1)) if m else None


def parse_benchmark_model(output: str, source: str = "benchmark_model") -> BenchmarkStats:
    """Statistics of the timed runs; raises DeviceError naming ``source`` if none are found."""
    stats_lines = []
    summary = None
    for line in output.splitlines():
        m = _STATS.search(line)
        if m and "avg=" in m.group("rest"):
            stats_lines.append((int(m.group(1)), m.group("rest")))
        m_new, m_old = _NEW.search(line), _OLD.search(line)
        if m_new:
            summary = ("new", [float(g) for g in m_new.groups()])
        elif m_old:
            summary = ("old", [float(g) for g in m_old.groups()])
    if summary is None and not stats_lines:
        tail = " | ".join(output.strip().splitlines()[-3:]) or "no output"
        raise DeviceError(f"{source}: no inference timings in benchmark_model output ({tail})")
    count = std = median = None
    avg = None
    if stats_lines:
        count, rest = stats_lines[-1]  # the timed runs come after the warm-up
        avg, std, median = _field(rest, "avg"), _field(rest, "std"), _field(rest, "median")
    init = None
    if summary is not None:
        kind, values = summary
        if kind == "new":
            init, inference = values[0], values[3]
        else:
            init, inference = values[1], values[2]
        avg = inference if avg is None else avg
    return BenchmarkStats(median if median is not None else avg, avg, count, std, median, init)
