"""int8 vs fp32 exports: latency ratio (ONNX Runtime and LiteRT), size ratio and accuracy drop.

Two workloads:

- the front of a search run on digits (``--run RUN``, or a default
  ``edgenas search`` run made here first): every member is exported with
  ``edgenas export`` (ONNX and TFLite, int8), which measures fp32 and int8
  validation accuracy in the runtimes; latencies are then measured with all
  of a member's files timed in the same shuffled rounds;
- a 224x224 network of the ``imagenet`` space (the middle of its cost range,
  random weights, int8 calibrated on random inputs): latency and size only.

Goals (DESIGN.md): ONNX int8 <= 0.8x fp32 latency at 224x224, size <= 0.3x,
accuracy drop <= 1 point; TFLite int8 runs in LiteRT.

    python benchmarks/export_quality.py [--run RUN] [--formats onnx,tflite] [--out benchmarks/results/export_quality.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

import edgenas
from edgenas.export.bundle import export_run, time_model_files
from edgenas.export.formats import get_format
from edgenas.hardware.devices import get_device
from edgenas.hardware.opmodels import quantize_onnx_int8, write_tflite_model
from edgenas.nn.model import build_model, export_onnx
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search
from edgenas.space.genome import Architecture
from edgenas.space.mbconv import get_space


def ratios(folder: Path, formats, resolution: int) -> dict:
    """Latency and size of fp32 and int8 files of each format, timed together."""
    out = {}
    for fmt in formats:
        files = [folder / f"model.fp32{get_format(fmt).suffix}", folder / f"model.int8{get_format(fmt).suffix}"]
        fp32_ms, int8_ms = time_model_files(get_device(get_format(fmt).local_device), files, resolution)
        fp32_kb, int8_kb = (f.stat().st_size / 1024 for f in files)
        out[fmt] = {"fp32_ms": fp32_ms, "int8_ms": int8_ms, "latency_ratio": int8_ms / fp32_ms,
                    "fp32_kb": fp32_kb, "int8_kb": int8_kb, "size_ratio": int8_kb / fp32_kb}
    return out


def network_224(formats, folder: Path) -> dict:
    space = get_space("imagenet")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    from edgenas.space.cost import architecture_cost

    macs = [architecture_cost(space, a, 3, 1000).macs for a in archs]
    arch = archs[int(np.argsort(macs)[len(macs) // 2])]
    torch.manual_seed(0)
    model = build_model(space, arch, 1000, 3).eval()
    calibration = rng.standard_normal((16, 3, 224, 224)).astype(np.float32)
    export_onnx(model, (3, 224, 224), folder / "model.fp32.onnx", dynamo=True)
    if "onnx" in formats:
        quantize_onnx_int8(folder / "model.fp32.onnx", folder / "model.int8.onnx", calibration)
    if "tflite" in formats:
        write_tflite_model(model, (3, 224, 224), folder / "model.fp32.tflite", "fp32")
        write_tflite_model(model, (3, 224, 224), folder / "model.int8.tflite", "int8", calibration)
    return {"arch": str(arch), "macs": int(architecture_cost(space, arch, 3, 1000).macs), **ratios(folder, formats, 224)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a search run folder (default: run the default search first)")
    parser.add_argument("--formats", default="onnx,tflite")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "export_quality.json"))
    args = parser.parse_args()
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = Path(args.run) if args.run else run_search(SearchConfig(run_dir=str(tmp / "run"))).run_dir
        _, reports = export_run(run, formats=formats, out=tmp / "export", measure_latency=False, log=print)
        members = []
        for r in reports:
            if r.status == "failed":
                print(f"member {r.id} failed: {r.reason}")
                continue
            files = {f.file: f for f in r.files}
            entry = {"id": r.id, "arch": r.arch, "status": r.status}
            entry.update(ratios(Path(r.bundle), formats, Architecture.parse(r.arch).resolution))
            for fmt in formats:
                fp32, int8 = files[f"model.fp32{get_format(fmt).suffix}"], files[f"model.int8{get_format(fmt).suffix}"]
                entry[fmt].update(fp32_accuracy=fp32.accuracy, int8_accuracy=int8.accuracy,
                                  accuracy_drop_pts=100 * (fp32.accuracy - int8.accuracy))
            members.append(entry)
        (tmp / "224").mkdir()
        big = network_224(formats, tmp / "224")

    print(f"\nfront of {run}: {len(members)} members")
    print(f"{'id':>4} {'fmt':7} {'fp32 ms':>8} {'int8 ms':>8} {'lat x':>6} {'fp32 KiB':>9} {'int8 KiB':>9} {'size x':>7} "
          f"{'fp32 acc':>9} {'int8 acc':>9} {'drop':>6}")
    for m in members:
        for fmt in formats:
            e = m[fmt]
            print(f"{m['id']:4d} {fmt:7} {e['fp32_ms']:8.3f} {e['int8_ms']:8.3f} {e['latency_ratio']:6.2f} "
                  f"{e['fp32_kb']:9.1f} {e['int8_kb']:9.1f} {e['size_ratio']:7.2f} {100 * e['fp32_accuracy']:8.2f}% "
                  f"{100 * e['int8_accuracy']:8.2f}% {e['accuracy_drop_pts']:6.2f}")
    summary = {}
    for fmt in formats:
        summary[fmt] = {
            "front_median_latency_ratio": float(np.median([m[fmt]["latency_ratio"] for m in members])),
            "front_median_size_ratio": float(np.median([m[fmt]["size_ratio"] for m in members])),
            "front_max_accuracy_drop_pts": float(max(m[fmt]["accuracy_drop_pts"] for m in members)),
            "front_mean_accuracy_drop_pts": float(np.mean([m[fmt]["accuracy_drop_pts"] for m in members])),
            "latency_ratio_224": big[fmt]["latency_ratio"], "size_ratio_224": big[fmt]["size_ratio"],
        }
    print(f"\n224x224 {big['arch']} ({big['macs'] / 1e6:.0f} M MACs)")
    for fmt in formats:
        e = big[fmt]
        print(f"  {fmt:7} fp32 {e['fp32_ms']:.2f} ms, int8 {e['int8_ms']:.2f} ms ({e['latency_ratio']:.2f}x); "
              f"{e['fp32_kb']:.0f} KiB -> {e['int8_kb']:.0f} KiB ({e['size_ratio']:.2f}x)")
    onnx = summary.get("onnx")
    if onnx:
        goals = {"latency <= 0.8x at 224": onnx["latency_ratio_224"] <= 0.8,
                 "size <= 0.3x at 224": onnx["size_ratio_224"] <= 0.3,
                 "accuracy drop <= 1 pt (every member)": onnx["front_max_accuracy_drop_pts"] <= 1.0}
        for goal, met in goals.items():
            print(f"ONNX {goal}: {'met' if met else 'NOT met'}")
        summary["onnx_goals"] = goals
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "export_quality", "edgenas": edgenas.__version__,
                               "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
                               "summary": summary, "front": members, "network_224": big}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
