"""How well one trained supernet stands in for training, and what it costs (issue: weight-sharing supernet).

1. trains the supernet of ``--space`` at ``--resolution`` on ``--data`` (or reuses ``--supernet DIR``), timed;
2. samples ``--archs`` architectures with ``--seed`` (not the supernet's seed), measures each in the supernet and
   trains each stand-alone with the default search recipe (``edgenas arch train``): Kendall tau between the two
   accuracies;
3. searches three device tables with the one supernet (``--budget`` subnets each, LEMONADE): seconds per 1,000
   candidates and front sizes.

``--data photos`` is a 32x32 RGB dataset built from photographs a pip package ships (:mod:`edgenas.nn.photos`:
scikit-learn's two sample photos cut into 4 bands each, 8 classes of 120 random crops; the folder ``own_data.py``
searches), written to a temporary ImageFolder; ``--budget 0`` skips the searches.  ``--reuse-standalone FILE`` takes the
stand-alone accuracies of an earlier result file (same data, space, resolution and seed) instead of training the
architectures again: how another supernet recipe (``--epochs``) ranks the same networks.

Run: ``python benchmarks/supernet.py [--supernet DIR] [--archs 30] [--budget 1000]``; writes
``benchmarks/results/supernet.json``;
``python benchmarks/supernet.py --data photos --resolution 32 --budget 0 --out benchmarks/results/supernet_photos.json``.
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
from edgenas.nn.photos import photo_folder, sklearn_photos, split_regions
from edgenas.nn.supernet import SupernetConfig, load_supernet, train_supernet
from edgenas.search.config import SearchConfig
from edgenas.search.evaluators import train_architecture
from edgenas.search.loop import run_search
from edgenas.space.mbconv import get_space

DEVICES = (("local-litert", "fp32"), ("local-ort", "int8"), ("local-ort", "fp32"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--space", default="small")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=SupernetConfig().epochs)
    parser.add_argument("--supernet", help="a trained supernet folder to reuse (its training time is then its own)")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--reuse-standalone", metavar="FILE", help="stand-alone accuracies of an earlier result file")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "supernet.json"))
    args = parser.parse_args()
    earlier = {}
    if args.reuse_standalone:
        kept = json.loads(Path(args.reuse_standalone).read_text())
        if [kept.get(k) for k in ("data", "space", "resolution", "seed")] != [args.data, args.space, args.resolution,
                                                                             args.seed]:
            raise SystemExit(f"--reuse-standalone: {args.reuse_standalone} measured other data, space, resolution "
                             "or seed")
        earlier = {r["arch"]: r["standalone"] for r in kept["architectures"]}

    space = get_space(args.space).with_choices(resolutions=[args.resolution])
    with tempfile.TemporaryDirectory() as tmp:
        data_name = args.data
        if args.data == "photos":
            args.data = f"imagefolder:{photo_folder(Path(tmp) / 'photos', split_regions(sklearn_photos(), 4), 120)}"
        folder = Path(args.supernet) if args.supernet else Path(tmp) / "supernet"
        started = time.perf_counter()
        if not args.supernet:
            train_supernet(space, args.data, folder, SupernetConfig(epochs=args.epochs), progress=False)
        supernet = load_supernet(folder)
        train_s = supernet.meta.get("seconds") if args.supernet else time.perf_counter() - started
        print(f"supernet: {supernet.meta['recipe']['epochs']} epochs, {train_s:.0f} s of training", flush=True)

        rng = np.random.default_rng(args.seed)
        archs = list(dict.fromkeys(str(space.sample(rng)) for _ in range(4 * args.archs)))[: args.archs]
        rows, standalone_s = [], 0.0
        for i, text in enumerate(archs, 1):
            one_shot = supernet.accuracy(space.parse(text))
            if text in earlier:
                standalone = earlier[text]
            else:
                result = train_architecture(text, args.space, args.data)
                standalone_s += result.train_seconds
                standalone = result.accuracy
            rows.append({"arch": text, "supernet": one_shot, "standalone": standalone})
            print(f"[{i}/{len(archs)}] {text}: supernet {100 * one_shot:.2f}%, stand-alone "
                  f"{100 * standalone:.2f}%", flush=True)
        tau = float(kendalltau([r["supernet"] for r in rows], [r["standalone"] for r in rows]).statistic)
        tau12 = float(kendalltau([r["supernet"] for r in rows[:12]], [r["standalone"] for r in rows[:12]]).statistic)
        print(f"Kendall tau over {len(rows)} architectures: {tau:.3f} (first 12: {tau12:.3f})"
              + (f"; stand-alone training {standalone_s / len(rows):.1f} s per network" if standalone_s else ""),
              flush=True)

        searches = []
        for device, precision in DEVICES if args.budget > 0 else ():
            config = SearchConfig(data=args.data, space=args.space, supernet=str(folder), device=device,
                                  precision=precision, budget=args.budget, run_dir=str(Path(tmp) / f"{device}-{precision}"))
            started = time.perf_counter()
            result = run_search(config, progress=False, log=lambda m: None)
            seconds = time.perf_counter() - started
            searches.append({"device": device, "precision": precision, "evaluations": result.evaluations,
                             "seconds": round(seconds, 1), "seconds_per_1000": round(1000 * seconds / result.evaluations, 1),
                             "front": len(result.front), "hypervolume": result.hypervolume})
            print(f"search {device} {precision}: {result.evaluations} subnets in {seconds:.0f} s "
                  f"({1000 * seconds / result.evaluations:.0f} s per 1,000), front of {len(result.front)}", flush=True)

    out = {"benchmark": "supernet", "edgenas": edgenas.__version__, "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "data": data_name, "space": args.space, "resolution": args.resolution,
           "supernet_epochs": supernet.meta["recipe"]["epochs"], "supernet_train_seconds": train_s,
           "seed": args.seed, "kendall_tau": tau, "kendall_tau_first_12": tau12,
           "standalone_seconds_per_network": standalone_s / len(rows) if standalone_s else None,
           "standalone_from": args.reuse_standalone, "architectures": rows, "searches": searches}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
