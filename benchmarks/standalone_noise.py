"""How well does stand-alone training rank architectures against itself?  (The reference of the supernet's bar.)

``benchmarks/supernet.py`` compares the supernet's accuracies with one stand-alone training per architecture
(``edgenas arch train``, the default recipe).  This script trains the same architectures several times, each draw
with another training seed (weights and batches redrawn; the validation split, recipe and budget unchanged; the
draw ``default`` is the seed ``edgenas arch train`` uses), and prints Kendall tau between the draws: how far a
single stand-alone run agrees with another, the most any accuracy source can be expected to agree with one run.
Each draw is also scored against the mean of the other draws.  Where ``--supernet-results`` measured the same
architectures (same data, space and sampling seed), the supernet's accuracies are scored against each draw and
against the mean of all draws.

``--epochs`` trains every draw longer than the default recipe; ``--workers`` trains that many networks at once
(the cores shared among them).

Run: ``python benchmarks/standalone_noise.py [--archs 12] [--seeds default,1001,2002] [--epochs N] [--workers 2]
[--reuse]``; writes ``benchmarks/results/standalone_noise.json`` (``--out``); ``--reuse`` rescores the draws of
that file (same architectures, seeds and epochs) instead of training again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

import edgenas
from edgenas.search.evaluators import train_architecture
from edgenas.space.mbconv import get_space


def tau(a, b) -> float:
    return float(kendalltau(a, b).statistic)


def _train(job: tuple) -> float:
    arch, space, data, epochs, seed, threads = job
    training_seed = None if seed == "default" else int(seed)
    return train_architecture(arch, space, data, epochs=epochs, training_seed=training_seed, threads=threads).accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--space", default="small")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11, help="sampling seed of the architectures (as supernet.py)")
    parser.add_argument("--seeds", default="default,1001,2002", help="training seed of each draw ('default': the "
                        "seed edgenas arch train uses)")
    parser.add_argument("--epochs", type=int, help="stand-alone epochs, at least (default: the default recipe's)")
    parser.add_argument("--workers", type=int, default=1, help="networks trained at once")
    parser.add_argument("--supernet-results", default=str(Path(__file__).parent / "results" / "supernet.json"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "standalone_noise.json"))
    parser.add_argument("--reuse", action="store_true", help="the draws of --out instead of training again")
    args = parser.parse_args()

    space = get_space(args.space).with_choices(resolutions=[args.resolution])
    rng = np.random.default_rng(args.seed)  # supernet.py's sampling rule
    archs = list(dict.fromkeys(str(space.sample(rng)) for _ in range(4 * args.archs)))[: args.archs]
    seeds = [s.strip() for s in args.seeds.split(",")]
    kept = json.loads(Path(args.out).read_text()) if args.reuse and Path(args.out).is_file() else {}
    if kept and (kept.get("architectures") != archs or kept.get("epochs") != args.epochs
                 or any(s not in kept.get("accuracy", {}) for s in seeds)):
        raise SystemExit(f"--reuse: {args.out} holds other architectures, seeds or epochs; run without --reuse")
    started = time.perf_counter()
    if kept:
        draws = {s: kept["accuracy"][s] for s in seeds}
    else:
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        jobs = [(a, args.space, args.data, args.epochs, s, threads) for s in seeds for a in archs]
        with ProcessPoolExecutor(args.workers) as pool:
            results = []
            for (a, *_, s, _), accuracy in zip(jobs, pool.map(_train, jobs)):
                results.append(accuracy)
                print(f"[{len(results)}/{len(jobs)}] seed {s} {a}: {100 * accuracy:.2f}%", flush=True)
        draws = {s: results[i * len(archs) : (i + 1) * len(archs)] for i, s in enumerate(seeds)}
    seconds = kept["training_seconds"] if kept else time.perf_counter() - started
    pairs = {f"{x} vs {y}": tau(draws[x], draws[y]) for x, y in itertools.combinations(draws, 2)}
    for name, value in pairs.items():
        print(f"Kendall tau, stand-alone {name}: {value:.3f}")
    print(f"mean Kendall tau between two draws: {np.mean(list(pairs.values())):.3f}")
    rest = {k: tau(v, np.mean([w for j, w in draws.items() if j != k], axis=0)) for k, v in draws.items()}
    print("Kendall tau, each draw vs the mean of the others: " + ", ".join(f"{k} {v:.3f}" for k, v in rest.items()))
    out = {"benchmark": "standalone_noise", "edgenas": edgenas.__version__, "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "data": args.data, "space": args.space, "resolution": args.resolution,
           "seed": args.seed, "epochs": args.epochs, "architectures": archs, "accuracy": draws,
           "kendall_tau_between_draws": pairs, "mean_kendall_tau_between_draws": float(np.mean(list(pairs.values()))),
           "kendall_tau_draw_vs_mean_of_others": rest, "training_seconds": round(seconds, 1)}
    earlier = {}
    path = Path(args.supernet_results)
    if path.is_file():
        data = json.loads(path.read_text())
        if (data.get("data"), data.get("space"), data.get("resolution"), data.get("seed")) == (
                args.data, args.space, args.resolution, args.seed):
            earlier = {r["arch"]: r["supernet"] for r in data["architectures"]}
    if all(a in earlier for a in archs):
        supernet = [earlier[a] for a in archs]
        out["supernet_results"] = path.name
        out["supernet_vs_each_draw"] = {k: tau(supernet, v) for k, v in draws.items()}
        out["supernet_vs_mean_of_draws"] = tau(supernet, np.mean(list(draws.values()), axis=0))
        print("Kendall tau, supernet vs each draw: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                                  out["supernet_vs_each_draw"].items())
              + f"; vs their mean {out['supernet_vs_mean_of_draws']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
