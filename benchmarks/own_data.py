"""The default search recipe on a user's own small image folders, built from real photographs.

Builds ImageFolders from photographs that pip packages ship (scikit-learn's two
sample photos; scikit-image's colour photos where it is installed, else the
scikit-learn photos cut into regions) with :mod:`edgenas.nn.photos`, then runs
``edgenas search --data imagefolder:DIR --budget N`` with every other setting
at its default (LEMONADE, the small space at 32x32, this machine's int8 ONNX
Runtime table).  For each folder it reports the best validation accuracy, the
front size, the resolved training budget (batch, epochs, steps), networks at
chance, and minutes; then it exports the most accurate member as fp32 ONNX and
classifies a *fresh* folder of the same kind (other crops, another seed),
preprocessing each image from the bundle's ``metadata.json`` alone (Pillow and
numpy, not edgenas).  ``--ablate`` also runs each folder with ``--min-steps 0``.

    python benchmarks/own_data.py [--cases two,eight] [--ablate] [--out benchmarks/results/own_data.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import edgenas
from edgenas.nn.photos import photo_folder, skimage_photos, sklearn_photos, split_regions
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search


def eight_photos() -> tuple[str, dict]:
    try:
        photos = skimage_photos()
        if len(photos) >= 8:
            return "scikit-image", dict(list(photos.items())[:8])
        if len(photos) >= 4:
            return "scikit-image (bands)", dict(list(split_regions(photos, 2).items())[:8])
    except ImportError:
        pass
    return "scikit-learn (4 bands per photo)", split_regions(sklearn_photos(), 4)


CASES = {
    # name: (photos, images per class, budget)
    "two": (lambda: ("scikit-learn", sklearn_photos()), 150, 10),
    "eight": (eight_photos, 120, 16),
}


def classify_fresh(bundle: Path, folder: Path) -> float:
    """Accuracy of the bundle's fp32 ONNX model on ``folder``, preprocessed from metadata.json alone."""
    import onnxruntime as ort
    from PIL import Image

    meta = json.loads((bundle / "metadata.json").read_text())
    size, mode = meta["input"]["resolution"], meta["preprocessing"]["mode"]
    mean = np.asarray(meta["normalization"]["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(meta["normalization"]["std"], dtype=np.float32)[:, None, None]
    session = ort.InferenceSession(str(bundle / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    labels = meta["labels"]
    correct = total = 0
    for label in labels:
        for path in sorted((folder / label).iterdir()):
            with Image.open(path) as img:
                img = img.convert(mode)
                w, h = img.size
                s = min(w, h)
                img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                x = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
            x = x.reshape(size, size, -1).transpose(2, 0, 1)
            logits = session.run(None, {name: ((x - mean) / std)[None].astype(np.float32)})[0]
            correct += int(labels[int(logits.argmax())] == label)
            total += 1
    return correct / total


def run_case(name: str, tmp: Path, min_steps: int | None, seed: int) -> dict:
    from edgenas.export.bundle import export_run

    source_fn, per_class, budget = CASES[name]
    source, photos = source_fn()
    folder = photo_folder(tmp / f"{name}-data", photos, per_class, seed=seed)
    fresh = photo_folder(tmp / f"{name}-fresh", photos, 20, seed=seed + 1000)
    kw = {} if min_steps is None else {"min_steps": min_steps}
    run_dir = tmp / f"{name}-run-{min_steps}"
    config = SearchConfig(data=f"imagefolder:{folder}", budget=budget, seed=seed, run_dir=str(run_dir), **kw)
    start = time.perf_counter()
    result = run_search(config, progress=False, log=lambda m: print(f"  {m}", flush=True))
    minutes = (time.perf_counter() - start) / 60
    resolved = json.loads((run_dir / "config.json").read_text())
    best = max(result.front, key=lambda e: e.accuracy or 0)
    out, reports = export_run(run_dir, members=str(best.id), formats="onnx", precision="fp32",
                              out=tmp / f"{name}-export-{min_steps}", measure_latency=False, log=lambda m: None)
    fresh_accuracy = classify_fresh(Path(reports[0].bundle), fresh) if reports[0].bundle else None
    row = {
        "case": name, "photos": source, "classes": len(photos), "images": per_class * len(photos), "budget": budget,
        "min_steps": config.min_steps, "seed": seed, "training": resolved["training"],
        "best_accuracy": best.accuracy, "front": len(result.front), "trained": result.trained,
        "at_chance": sum("at chance" in n for n in result.notes), "notes": result.notes,
        "minutes": round(minutes, 2), "fresh_accuracy_fp32_onnx": fresh_accuracy,
        "chance": 1 / len(photos),
    }
    print(f"{name}: {row['classes']} classes, {row['images']} images, min_steps {config.min_steps}: batch "
          f"{row['training']['batch_size']}, {row['training']['epochs']} epochs ({row['training']['steps']} steps); "
          f"best {100 * best.accuracy:.1f}%, front {row['front']}, {minutes:.1f} min; fresh images "
          f"{100 * (fresh_accuracy or 0):.1f}% (fp32 ONNX, metadata.json preprocessing)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="two,eight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablate", action="store_true", help="also run each case with --min-steps 0")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "own_data.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            for min_steps in ([None, 0] if args.ablate else [None]):
                rows.append(run_case(name, Path(tmp), min_steps, args.seed))
    result = {"benchmark": "own_data", "edgenas": edgenas.__version__, "machine": platform.machine(),
              "cpus": __import__("os").cpu_count(), "date": time.strftime("%Y-%m-%d"), "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
