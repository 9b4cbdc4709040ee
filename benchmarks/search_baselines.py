"""NSGA-II vs random search on the bundled digits data, at an equal training budget.

For each seed, both strategies run the default search (digits, small space at
8x8, this machine's int8 table, objectives error/latency/memory/size) with the
same budget of trained networks.  Every run's hypervolume is then recomputed
against one shared reference point (so runs are comparable), after every
generation and at the end.

    python benchmarks/search_baselines.py [--seeds 0,1,2] [--budget 48] [--epochs 8]
                                          [--strategies nsga2,random] [--out benchmarks/results/search_baselines.json]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from common import compute_curve, run_strategies, shared_reference

import edgenas
from edgenas.search.config import SearchConfig
from edgenas.search.objectives import parse_objectives
from edgenas.search.pareto import hypervolume, pareto_front


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=48)
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--strategies", default="nsga2,random")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "search_baselines.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")

    runs = run_strategies(
        lambda name, seed, run_dir: SearchConfig(strategy=name, seed=seed, budget=args.budget,
                                                 population=args.population, epochs=args.epochs, run_dir=run_dir),
        strategies, seeds)
    objectives = parse_objectives(SearchConfig().objectives)
    reference = shared_reference(runs)
    results = {name: [] for name in strategies}
    for (name, seed), run in runs.items():
        evaluations = run["evaluations"]
        curve = compute_curve(evaluations, objectives, reference)
        final = hypervolume(pareto_front(evaluations, objectives), objectives, reference)
        best = max((e.accuracy or 0) for e in evaluations)
        results[name].append({"seed": seed, "hypervolume": final, "front_size": run["front"], "best_accuracy": best,
                              "train_seconds": sum(e.train_seconds for e in evaluations), "seconds": run["seconds"],
                              "curve": curve})
    print(f"\nhypervolume at {args.budget} trained networks (shared reference point), mean +- std over {len(seeds)} seeds")
    print(f"{'strategy':10s} {'mean HV':>12s} {'std':>10s} {'front':>6s} {'best acc':>9s}  per seed")
    summary = {}
    for name, items in results.items():
        hv = np.array([i["hypervolume"] for i in items])
        summary[name] = {"mean_hypervolume": float(hv.mean()), "std_hypervolume": float(hv.std()),
                         "mean_front_size": float(np.mean([i["front_size"] for i in items])),
                         "mean_best_accuracy": float(np.mean([i["best_accuracy"] for i in items]))}
        print(f"{name:10s} {hv.mean():12.5g} {hv.std():10.3g} {summary[name]['mean_front_size']:6.1f} "
              f"{100 * summary[name]['mean_best_accuracy']:8.2f}%  " + ", ".join(f"{v:.5g}" for v in hv))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "search_baselines", "edgenas": edgenas.__version__, "python": platform.python_version(),
        "budget": args.budget, "population": args.population, "epochs": args.epochs, "seeds": seeds,
        "objectives": [o.value for o in objectives], "reference_point": reference, "summary": summary, "runs": results,
    }, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
