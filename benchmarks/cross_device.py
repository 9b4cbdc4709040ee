"""Hardware-awareness, measured: does a device's own table beat another device's table on that device?

The second device is the emulated arm64 one (``python -m edgenas.devtools.arm64 ROOT``; built here if missing).
For each space (default ``tiny`` and ``small`` at 8x8, 1 channel, 10 classes, fp32, ONNX Runtime, 1 thread):

1. profiles this machine (``local-ort``, x86_64) and the emulated device, timed;
2. measures ``--samples`` held-out architectures (seed ``--seed``, not the profiling seed) whole on the emulated
   device, twice (``edgenas tables validate``'s code), and scores both tables' predictions against those
   measurements: Kendall tau and the share within +-10% (for the x86 table also after one global rescale, since a
   slower device alone would put every prediction outside +-10% without changing its ranking);
3. with ``--fronts`` (default on for ``small``): trains one supernet of the space on digits (``--supernet-epochs``),
   searches ``--budget`` subnets against each table (objectives error and latency), measures every member of both
   fronts on the emulated device, and counts the x86-table front members that a member of the device-table front
   dominates on measured latency and the same accuracy source.

Run: ``python benchmarks/cross_device.py [--root ~/edgenas-arm64] [--spaces tiny,small] [--samples 12]``;
writes ``benchmarks/results/cross_device.json``.  Emulated timings describe the emulated device (arm64 code
translated by qemu on this machine's CPU), not real ARM silicon.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

import edgenas
from edgenas.devtools.arm64 import build_userland
from edgenas.hardware.devices import get_device
from edgenas.hardware.opmodels import MODEL_SUFFIX
from edgenas.hardware.predict import Predictor
from edgenas.hardware.profile import MeasurementSettings, ModelSpec, latency_statistic, measure, profile_device
from edgenas.hardware.validate import validate_table, within_tolerance
from edgenas.space.cost import Precision
from edgenas.space.mbconv import get_space

CHANNELS, CLASSES, PRECISION = 1, 10, "fp32"


def score(predicted: np.ndarray, measured: np.ndarray) -> dict:
    scale = float(np.median(measured / predicted))
    return {"kendall_tau": float(kendalltau(predicted, measured).statistic), "within_10pct": within_tolerance(predicted / measured),
            "mape_pct": float(np.mean(np.abs(predicted / measured - 1)) * 100),
            "rescale": scale, "within_10pct_rescaled": within_tolerance(predicted * scale / measured)}


def dominated(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` is dominated by ``b`` (both minimised: error, latency)."""
    return b[0] <= a[0] and b[1] <= a[1] and b != a


def fronts(space_name: str, space, tables: dict, device, tmp: Path, args) -> dict:
    from edgenas.nn.supernet import SupernetConfig, train_supernet
    from edgenas.search.config import SearchConfig
    from edgenas.search.loop import run_search

    folder = tmp / f"supernet-{space_name}"
    started = time.perf_counter()
    train_supernet(space, "digits", folder, SupernetConfig(epochs=args.supernet_epochs), progress=False)
    train_s = time.perf_counter() - started
    print(f"{space_name}: supernet trained in {train_s:.0f} s ({args.supernet_epochs} epochs)", flush=True)
    found = {}
    for which, (table_path, device_ref) in tables.items():
        config = SearchConfig(data="digits", space=space_name, resolution=args.resolution, supernet=str(folder),
                              device=device_ref,
                              table=str(table_path), precision=PRECISION, objectives="error,latency",
                              budget=args.budget, seed=args.seed, drift_check=False,
                              run_dir=str(tmp / f"run-{space_name}-{which}"))
        started = time.perf_counter()
        result = run_search(config, progress=False, log=lambda m: None)
        found[which] = {"members": [(e.arch, 1 - float(e.accuracy)) for e in result.front],
                        "seconds": round(time.perf_counter() - started, 1), "evaluations": result.evaluations}
        print(f"{space_name}: search with the {which} table: {result.evaluations} subnets, front of "
              f"{len(result.front)} in {found[which]['seconds']:.0f} s", flush=True)
    archs = sorted({a for f in found.values() for a, _ in f["members"]})
    suffix = MODEL_SUFFIX[device.runtime]
    specs = [ModelSpec(f"net:{a}", f"net{i:03d}{suffix}", arch=space.parse(a)) for i, a in enumerate(archs)]
    settings = MeasurementSettings(warmup_runs=3, rounds=3, runs_per_round=10)
    measured = measure(device, space, specs, Precision(PRECISION), CHANNELS, CLASSES, settings, tmp / f"front-{space_name}",
                       quiet=True)["results"]
    latency = {a: latency_statistic(measured[f"net:{a}"]["rounds_ms"]) for a in archs}
    own = [(err, latency[a]) for a, err in found["device"]["members"]]
    x86 = [(a, err, latency[a]) for a, err in found["x86"]["members"]]
    beaten = [a for a, err, lat in x86 if any(dominated((err, lat), o) for o in own)]
    shared = {a for a, _ in found["device"]["members"]} & {a for a, _, _ in x86}
    return {"supernet_epochs": args.supernet_epochs, "supernet_train_seconds": round(train_s, 1),
            "budget": args.budget, "searches": found, "measured_ms": latency,
            "x86_front": len(x86), "device_front": len(own), "shared_members": len(shared),
            "x86_members_dominated_on_the_device": len(beaten), "dominated": beaten}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(Path.home() / "edgenas-arm64"), help="the emulated userland (built if "
                        "missing)")
    parser.add_argument("--spaces", default="tiny,small")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--samples", type=int, default=12, help="held-out architectures measured on the device")
    parser.add_argument("--seed", type=int, default=101, help="seed of the held-out architectures and the searches")
    parser.add_argument("--fronts", default="small", help="spaces whose search fronts are compared ('' for none)")
    parser.add_argument("--budget", type=int, default=500, help="subnets per search (--fronts)")
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cross_device.json"))
    args = parser.parse_args()

    manifest = build_userland(args.root, log=lambda line: print(line, flush=True))
    device_file = Path(args.root) / "devices" / "emulated-arm64-ort.yaml"
    device, x86_device = get_device(str(device_file)), get_device("local-ort")
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in args.spaces.split(","):
            space = get_space(name).with_choices(resolutions=[args.resolution])
            tables, seconds = {}, {}
            for which, dev in (("x86", x86_device), ("device", device)):
                started = time.perf_counter()
                tables[which] = profile_device(dev, space, PRECISION, CHANNELS, CLASSES, tmp / f"{name}-{which}.json",
                                               quiet=True)
                seconds[which] = round(time.perf_counter() - started, 1)
                print(f"{name}: profiled {which} ({tables[which].host['machine']}): {len(tables[which].entries)} ops "
                      f"in {seconds[which]:.0f} s", flush=True)
            report = validate_table(tables["device"], samples=args.samples, seed=args.seed, quiet=True)
            archs = [space.parse(a["arch"]) for a in report.architectures]
            measured = np.array([a["measured_ms"] for a in report.architectures])
            scores = {}
            for which, table in tables.items():
                predictor = Predictor(table, space, CHANNELS, CLASSES)
                predicted = np.array([predictor.predict(a).latency_ms for a in archs])
                scores[which] = score(predicted, measured)
            results[name] = {
                "ops": len(tables["device"].entries), "profiling_seconds": seconds,
                "hosts": {w: t.host for w, t in tables.items()}, "samples": len(archs), "seed": args.seed,
                "noise_within_10pct": report.noise_within_10pct, "scores_on_the_device": scores,
                "measured_ms": {"min": float(measured.min()), "median": float(np.median(measured)),
                                "max": float(measured.max())},
            }
            for which, s in scores.items():
                print(f"{name}: {which} table on the emulated device: tau {s['kendall_tau']:.3f}, within +-10% "
                      f"{s['within_10pct'] * 100:.0f}% (after one rescale x{s['rescale']:.2f}: "
                      f"{s['within_10pct_rescaled'] * 100:.0f}%), MAPE {s['mape_pct']:.1f}%", flush=True)
            if name in args.fronts.split(","):
                paths = {"x86": (tmp / f"{name}-x86.json", "local-ort"), "device": (tmp / f"{name}-device.json",
                                                                                  str(device_file))}
                results[name]["fronts"] = f = fronts(name, space, paths, device, tmp, args)
                print(f"{name}: {f['x86_members_dominated_on_the_device']} of {f['x86_front']} x86-table front "
                      f"members are dominated on the device (measured) by the device-table front of "
                      f"{f['device_front']}; {f['shared_members']} shared", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "cross_device", "edgenas": edgenas.__version__, "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(), "emulated": {k: manifest.get(k) for k in ("host", "qemu", "suite")},
        "resolution": args.resolution, "precision": PRECISION, "bars": {"kendall_tau_own_table": 0.7},
        "results": results,
    }, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
