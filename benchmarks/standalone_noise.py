"""How well does stand-alone training rank architectures against itself?  (The reference of the supernet's bar.)

``benchmarks/supernet.py`` compares the supernet's accuracies with one stand-alone training per architecture
(``edgenas arch train``, the default recipe).  This script trains the same architectures again with other
training seeds (weights and batches redrawn; the validation split, recipe and budget unchanged) and prints Kendall
tau between the draws: the most any accuracy source can agree with a single stand-alone run.  With the
architectures of ``benchmarks/results/supernet.json`` (same space, data and sampling seed) it reuses that file's
stand-alone accuracies as the first draw and also scores the supernet against the mean of all draws.

Each draw is also scored against the mean of the other draws: how well the best estimate that stand-alone training
offers (without that draw) predicts one run.

Run: ``python benchmarks/standalone_noise.py [--archs 12] [--seeds 1001,2002] [--reuse]``; writes
``benchmarks/results/standalone_noise.json``; ``--reuse`` takes the draws of that file (same architectures and
seeds) instead of training again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

import edgenas
from edgenas.search.evaluators import train_architecture
from edgenas.space.mbconv import get_space


def tau(a, b) -> float:
    return float(kendalltau(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--space", default="small")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11, help="sampling seed of the architectures (as supernet.py)")
    parser.add_argument("--seeds", default="1001,2002", help="training seeds of the extra draws")
    parser.add_argument("--supernet-results", default=str(Path(__file__).parent / "results" / "supernet.json"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "standalone_noise.json"))
    parser.add_argument("--reuse", action="store_true", help="the draws of --out instead of training again")
    args = parser.parse_args()

    space = get_space(args.space).with_choices(resolutions=[args.resolution])
    rng = np.random.default_rng(args.seed)  # supernet.py's sampling rule
    archs = list(dict.fromkeys(str(space.sample(rng)) for _ in range(4 * args.archs)))[: args.archs]
    earlier = {}
    path = Path(args.supernet_results)
    if path.is_file():
        data = json.loads(path.read_text())
        if (data.get("data"), data.get("space"), data.get("seed")) == (args.data, args.space, args.seed):
            earlier = {r["arch"]: r for r in data["architectures"]}
    draws: dict[str, list[float]] = {}
    if all(a in earlier for a in archs):
        draws["default"] = [earlier[a]["standalone"] for a in archs]
        print(f"draw 'default' (the search's own seed): from {path}", flush=True)
    else:
        earlier = {}
        draws["default"] = [train_architecture(a, args.space, args.data).accuracy for a in archs]
    seeds = [s.strip() for s in args.seeds.split(",")]
    kept = json.loads(Path(args.out).read_text()) if args.reuse and Path(args.out).is_file() else {}
    if kept and (kept.get("architectures") != archs or any(s not in kept.get("accuracy", {}) for s in seeds)):
        raise SystemExit(f"--reuse: {args.out} holds other architectures or seeds; run without --reuse")
    started = time.perf_counter()
    for seed in (int(s) for s in seeds):
        if kept:
            draws[str(seed)] = kept["accuracy"][str(seed)]
            continue
        draws[str(seed)] = []
        for i, a in enumerate(archs, 1):
            result = train_architecture(a, args.space, args.data, training_seed=seed)
            draws[str(seed)].append(result.accuracy)
            print(f"[seed {seed} {i}/{len(archs)}] {a}: {100 * result.accuracy:.2f}%", flush=True)
    seconds = kept["training_seconds"] if kept else time.perf_counter() - started
    pairs = {f"{x} vs {y}": tau(draws[x], draws[y]) for x, y in itertools.combinations(draws, 2)}
    for name, value in pairs.items():
        print(f"Kendall tau, stand-alone {name}: {value:.3f}")
    rest = {k: tau(v, np.mean([w for j, w in draws.items() if j != k], axis=0)) for k, v in draws.items()}
    print("Kendall tau, each draw vs the mean of the others: " + ", ".join(f"{k} {v:.3f}" for k, v in rest.items()))
    out = {"benchmark": "standalone_noise", "edgenas": edgenas.__version__, "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "data": args.data, "space": args.space, "resolution": args.resolution,
           "seed": args.seed, "architectures": archs, "accuracy": draws, "kendall_tau_between_draws": pairs,
           "kendall_tau_draw_vs_mean_of_others": rest,
           "training_seconds": round(seconds, 1)}
    if earlier:
        supernet = [earlier[a]["supernet"] for a in archs]
        mean = np.mean(list(draws.values()), axis=0)
        out["supernet_vs_each_draw"] = {k: tau(supernet, v) for k, v in draws.items()}
        out["supernet_vs_mean_of_draws"] = tau(supernet, mean)
        print("Kendall tau, supernet vs each draw: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                                  out["supernet_vs_each_draw"].items())
              + f"; vs their mean {out['supernet_vs_mean_of_draws']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
