"""Fidelity of latency tables on this machine: profile, then predict held-out random networks.

For each configuration (default: the small preset at 32x32 and the ImageNet
preset at 224x224, ONNX Runtime CPU, 1 thread, fp32) this profiles a fresh
table with ``edgenas profile``'s code (timed), then measures random whole
networks from held-out seeds twice and compares them with the table's
predictions (``edgenas tables validate``'s code).

    python benchmarks/table_fidelity.py [--samples 30] [--configs small-32-fp32,imagenet-224-fp32]
                                        [--out benchmarks/results/table_fidelity.json]

Bars (issue #3): >= 90% of architectures within +-10% and Kendall tau >= 0.85 at
both resolutions, and a default table profiled in <= 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import edgenas
from edgenas.hardware.devices import get_device
from edgenas.hardware.profile import profile_device
from edgenas.hardware.validate import validate_table
from edgenas.space.mbconv import get_space

CONFIGS = {
    # name: (device, space, resolution, in_channels, num_classes, precision)
    "small-32-fp32": ("local-ort", "small", 32, 3, 10, "fp32"),
    "small-32-int8": ("local-ort", "small", 32, 3, 10, "int8"),
    "small-8-fp32": ("local-ort", "small", 8, 1, 10, "fp32"),
    "imagenet-224-fp32": ("local-ort", "imagenet", 224, 3, 1000, "fp32"),
    "litert-small-32-fp32": ("local-litert", "small", 32, 3, 10, "fp32"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=30, help="held-out architectures per configuration")
    parser.add_argument("--seeds", default="101", help="comma-separated validation seeds (held out from profiling)")
    parser.add_argument("--configs", default="small-32-fp32,imagenet-224-fp32", help=f"any of {', '.join(CONFIGS)}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "table_fidelity.json"))
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            device_name, space_name, res, channels, classes, precision = CONFIGS[name]
            device = get_device(device_name)
            space = get_space(space_name).with_choices(resolutions=[res])
            start = time.perf_counter()
            table = profile_device(device, space, precision, channels, classes, Path(tmp) / f"{name}.json", quiet=True)
            profile_s = time.perf_counter() - start
            runs = []
            for seed in (int(s) for s in args.seeds.split(",")):
                report = validate_table(table, samples=args.samples, seed=seed, quiet=True).to_dict()
                report.pop("architectures")
                runs.append(report)
            results[name] = {
                "device": device_name, "space": space_name, "resolution": res, "precision": precision,
                "ops": len(table.entries), "profiling_seconds": round(profile_s, 1),
                "overhead_us": table.overhead.latency_ms * 1000,
                "calibration_scale": table.calibration.latency_scale,
                "validation": runs,
            }
            for r in runs:
                print(
                    f"{name:20s} seed {r['seed']:4d}: within +-10% {r['within_10pct'] * 100:5.1f}% "
                    f"(noise ceiling {r['noise_within_10pct'] * 100:5.1f}%), tau {r['kendall_tau']:.3f}, "
                    f"MAPE {r['mape_pct']:.2f}% (noise {r['noise_mape_pct']:.2f}%), bias {r['bias_pct']:+.2f}%; "
                    f"machine speed vs profiling x{1 / r['speed_ratio']:.2f}, drift-corrected: "
                    f"within {r['within_10pct_drift_corrected'] * 100:5.1f}%, MAPE {r['mape_pct_drift_corrected']:.2f}%; "
                    f"profiled {len(table.entries)} ops in {profile_s:.0f} s",
                    flush=True,
                )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "table_fidelity", "edgenas": edgenas.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "samples": args.samples,
        "bars": {"within_10pct": 0.9, "kendall_tau": 0.85, "profiling_seconds": 300},
        "results": results,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
