"""Do the shipped tables stay true?  Validate each now, recalibrate a copy, validate again, and check it with an
independent harness.

For every shipped table of this machine (``latency_tables/local-*``), in order:

1. ``edgenas tables validate``'s code on ``--samples`` held-out random networks: the plain figures (as the table
   was shipped) and the drift-corrected ones;
2. ``edgenas tables recalibrate`` on a copy (timed: the bar is <= 60 s);
3. validation of the recalibrated copy;
4. for ONNX Runtime tables, an independent harness that shares no timing code with edgenas: plain
   ``onnxruntime.InferenceSession.run`` on the same held-out architectures (built and, for int8, quantized as
   the exporter deploys them), warm-up then 5 shuffled rounds of 20 runs, the fastest round's median; it
   reports the share within +-10% of the recalibrated copy's prediction and Kendall's tau.

    python benchmarks/table_drift.py [--samples 20] [--tables local-ort_small-r32...] [--out results/table_drift.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

import edgenas
from edgenas.hardware.drift import recalibrate_table
from edgenas.hardware.predict import Predictor
from edgenas.hardware.tables import LatencyTable
from edgenas.hardware.validate import validate_table
from edgenas.resources import shipped_dir

KEYS = ("within_10pct", "kendall_tau", "mape_pct", "bias_pct", "speed_ratio", "within_10pct_drift_corrected",
        "floored_ops", "noise_within_10pct")


def independent_ort(table: LatencyTable, archs, folder: Path, rounds: int = 5, runs: int = 20) -> list[float]:
    """Latency (ms) of each architecture by plain onnxruntime sessions: the fastest round's median."""
    import onnxruntime as ort
    import torch

    from edgenas.hardware.opmodels import quantize_onnx_int8
    from edgenas.nn.model import build_model, export_onnx

    space, task = table.search_space(), table.task
    sessions = []
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        model = build_model(space, arch, task["num_classes"], task["in_channels"]).eval()
        path = export_onnx(model, model.input_shape, folder / f"m{i}.onnx")
        if table.precision.value == "int8":
            calib = np.random.default_rng(i).random((8, *model.input_shape)).astype(np.float32)
            path = quantize_onnx_int8(path, folder / f"m{i}.int8.onnx", calib)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(i).random((1, *model.input_shape)).astype(np.float32)
        feed = {session.get_inputs()[0].name: x}
        for _ in range(10):
            session.run(None, feed)
        sessions.append((session, feed))
    best = [np.inf] * len(archs)
    rng = np.random.default_rng(99)
    for _ in range(rounds):
        for i in rng.permutation(len(archs)):
            session, feed = sessions[i]
            times = []
            for _ in range(runs if archs[i].resolution <= 64 else 6):
                t0 = time.perf_counter()
                session.run(None, feed)
                times.append((time.perf_counter() - t0) * 1e3)
            best[i] = min(best[i], float(np.median(times)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=101, help="seed of the held-out architectures")
    parser.add_argument("--tables", help="comma-separated table file names (default: every shipped local-* table)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "table_drift.json"))
    args = parser.parse_args()
    folder = shipped_dir("latency_tables")
    names = args.tables.split(",") if args.tables else sorted(p.name for p in folder.glob("local-*.json"))
    rows = []
    for name in names:
        table = LatencyTable.load(folder / name)
        before = validate_table(table, args.samples, args.seed, quiet=True).to_dict()
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / name
            shutil.copyfile(folder / name, copy)
            start = time.perf_counter()
            updated, check = recalibrate_table(copy, quiet=True)
            seconds = time.perf_counter() - start
            after = validate_table(updated, args.samples, args.seed, quiet=True).to_dict()
            row = {"table": name, "recalibrate_seconds": round(seconds, 1), "speed_ratio_since_profiling":
                   check.speed_ratio, "before": {k: before.get(k) for k in KEYS},
                   "after": {k: after.get(k) for k in KEYS}}
            if updated.runtime.name == "onnxruntime":
                space = updated.search_space()
                archs = [space.parse(a["arch"]) for a in after["architectures"]]
                predictor = Predictor(updated, space, updated.task["in_channels"], updated.task["num_classes"])
                predicted = np.array([predictor.predict(a).latency_ms for a in archs])
                measured = np.array(independent_ort(updated, archs, Path(tmp)))
                ratio = predicted / measured
                row["independent"] = {"within_10pct": float(np.mean(np.abs(ratio - 1) <= 0.1)),
                                      "kendall_tau": float(kendalltau(predicted, measured).statistic),
                                      "bias_pct": float(np.median(ratio - 1) * 100), "samples": len(archs)}
        rows.append(row)
        ind = row.get("independent", {})
        print(f"{name}: before within10 {100 * before['within_10pct']:.0f}% tau {before['kendall_tau']:.3f} bias "
              f"{before['bias_pct']:+.1f}% (device at x{1 / before['speed_ratio']:.2f} speed) | recalibrated in "
              f"{seconds:.0f} s | after within10 {100 * after['within_10pct']:.0f}% tau {after['kendall_tau']:.3f} "
              f"bias {after['bias_pct']:+.1f}%"
              + (f" | independent ORT within10 {100 * ind['within_10pct']:.0f}% tau {ind['kendall_tau']:.3f} "
                 f"bias {ind['bias_pct']:+.1f}%" if ind else ""), flush=True)
    result = {"benchmark": "table_drift", "edgenas": edgenas.__version__, "machine": platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "samples": args.samples, "seed": args.seed, "tables": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
