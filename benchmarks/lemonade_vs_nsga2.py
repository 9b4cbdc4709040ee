"""LEMONADE vs NSGA-II vs random search: hypervolume against cumulative training compute.

For each seed, each strategy runs the default search setting (bundled digits,
`small` space at 8x8, this machine's int8 ONNX Runtime table, objectives
error/latency/memory/size) with the same budget of trained networks.  NSGA-II
and random search train every network from scratch (``--epochs``); LEMONADE
trains its first generation from scratch and then fine-tunes children that
inherit their parent's weights (``--finetune-epochs``).  Every run is scored on
one shared reference point after each trained network, against the training
seconds and epochs summed so far.

The bar (DESIGN.md): LEMONADE reaches NSGA-II's final hypervolume with <= 50%
of NSGA-II's training compute.  Per seed the script reports the compute at
which LEMONADE first reaches the NSGA-II run's final hypervolume, as a fraction
of that NSGA-II run's compute (epochs and seconds), and writes JSON and a PNG.

    python benchmarks/lemonade_vs_nsga2.py [--seeds 0,1,2] [--budget 40] [--population 8] [--epochs 4]
                                           [--finetune-epochs 1] [--strategies lemonade,nsga2,rl,random]
                                           [--reuse benchmarks/results/lemonade_vs_nsga2.json]

``--reuse`` takes the runs of an earlier result file (same settings and seeds)
and runs only the strategies it lacks; the reference point depends only on the
table and the seed, and the script checks that it is the same.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from common import compute_curve, first_reaching, run_strategies, shared_reference

import edgenas
from edgenas.search.config import SearchConfig
from edgenas.search.objectives import parse_objectives

RESULTS = Path(__file__).parent / "results"


def plot(path: Path, results: dict, target_by_seed: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"lemonade": "tab:green", "nsga2": "tab:blue", "random": "tab:gray", "rl": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "epochs", "training epochs (summed)"),
                           (axes[1], "train_seconds", "training seconds (summed)")):
        for name, items in results.items():
            for k, item in enumerate(items):
                curve = item["curve"]
                ax.step([p[key] for p in curve], [p["hypervolume"] for p in curve], where="post",
                        color=colors.get(name, None), alpha=0.8, label=name if k == 0 else None)
        ax.set_xlabel(label)
        ax.set_ylabel("hypervolume (shared reference)")
        ax.grid(alpha=0.3)
    for target in target_by_seed.values():
        axes[0].axhline(target, color="tab:blue", lw=0.6, ls=":")
    axes[0].legend()
    fig.suptitle("hypervolume vs training compute; dotted: NSGA-II's final hypervolume per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=40, help="trained networks per run")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--strategies", default="lemonade,nsga2,rl,random")
    parser.add_argument("--reuse", help="an earlier result file whose runs are kept (same settings)")
    parser.add_argument("--out", default=str(RESULTS / "lemonade_vs_nsga2.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    if "nsga2" not in strategies or "lemonade" not in strategies:
        parser.error("--strategies must include lemonade and nsga2")

    previous = json.loads(Path(args.reuse).read_text()) if args.reuse else {"runs": {}}
    if args.reuse:
        same = {k: previous[k] == getattr(args, k) for k in ("budget", "population", "epochs", "finetune_epochs")}
        if not all(same.values()) or previous["seeds"] != seeds:
            parser.error(f"{args.reuse} was run with other settings: {same}, seeds {previous['seeds']}")
    kept = {name: items for name, items in previous["runs"].items() if name in strategies}
    runs = run_strategies(
        lambda name, seed, run_dir: SearchConfig(
            strategy=name, seed=seed, budget=args.budget, population=args.population, epochs=args.epochs,
            finetune_epochs=args.finetune_epochs, run_dir=run_dir),
        [name for name in strategies if name not in kept], seeds)
    objectives = parse_objectives(SearchConfig().objectives)
    reference = shared_reference(runs) if runs else previous["reference_point"]
    if kept and not np.allclose(reference, previous["reference_point"]):
        parser.error(f"the reference point differs from {args.reuse}'s: the runs are not comparable")
    results: dict[str, list] = {name: list(kept.get(name, [])) for name in strategies}
    for (name, seed), run in runs.items():
        curve = compute_curve(run["evaluations"], objectives, reference)
        results[name].append({"seed": seed, "curve": curve, "final_hypervolume": curve[-1]["hypervolume"],
                              "epochs": curve[-1]["epochs"], "train_seconds": curve[-1]["train_seconds"],
                              "front_size": run["front"], "seconds": run["seconds"],
                              "best_accuracy": max((e.accuracy or 0) for e in run["evaluations"])})

    print(f"\n{args.budget} trained networks per run, shared reference point")
    print(f"{'strategy':9s} {'final HV':>12s} {'std':>10s} {'epochs':>7s} {'train s':>8s} {'front':>6s} {'best acc':>9s}")
    summary: dict[str, dict] = {}
    for name, items in results.items():
        hv = np.array([i["final_hypervolume"] for i in items])
        summary[name] = {"mean_final_hypervolume": float(hv.mean()), "std_final_hypervolume": float(hv.std()),
                         "mean_epochs": float(np.mean([i["epochs"] for i in items])),
                         "mean_train_seconds": float(np.mean([i["train_seconds"] for i in items])),
                         "mean_front_size": float(np.mean([i["front_size"] for i in items])),
                         "mean_best_accuracy": float(np.mean([i["best_accuracy"] for i in items]))}
        s = summary[name]
        print(f"{name:9s} {hv.mean():12.5g} {hv.std():10.3g} {s['mean_epochs']:7.0f} {s['mean_train_seconds']:8.0f} "
              f"{s['mean_front_size']:6.1f} {100 * s['mean_best_accuracy']:8.2f}%")

    nsga = {i["seed"]: i for i in results["nsga2"]}
    targets = {seed: nsga[seed]["final_hypervolume"] for seed in seeds}
    print("\nLEMONADE's compute to reach NSGA-II's final hypervolume (fraction of NSGA-II's compute), per seed")
    reach = []
    for item in results["lemonade"]:
        seed = item["seed"]
        point = first_reaching(item["curve"], targets[seed])
        entry = {"seed": seed, "nsga2_final_hypervolume": targets[seed], "reached": point is not None}
        if point is not None:
            entry.update(epochs=point["epochs"], train_seconds=point["train_seconds"], trained=point["trained"],
                         epochs_fraction=point["epochs"] / nsga[seed]["epochs"],
                         seconds_fraction=point["train_seconds"] / nsga[seed]["train_seconds"])
            print(f"  seed {seed}: reached after {point['trained']} networks, {point['epochs']} epochs "
                  f"({100 * entry['epochs_fraction']:.0f}% of NSGA-II's), {point['train_seconds']:.0f} s "
                  f"({100 * entry['seconds_fraction']:.0f}%)")
        else:
            print(f"  seed {seed}: not reached (LEMONADE's final {item['final_hypervolume']:.5g} < {targets[seed]:.5g})")
        reach.append(entry)
    reached = [r for r in reach if r["reached"]]
    bar_met = len(reached) == len(reach) and all(r["epochs_fraction"] <= 0.5 and r["seconds_fraction"] <= 0.5
                                                 for r in reached)
    print(f"bar (reach on every seed with <= 50% of the epochs and seconds): {'met' if bar_met else 'NOT met'}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(png, results, targets)
    out.write_text(json.dumps({
        "benchmark": "lemonade_vs_nsga2", "edgenas": edgenas.__version__, "python": platform.python_version(),
        "budget": args.budget, "population": args.population, "epochs": args.epochs,
        "finetune_epochs": args.finetune_epochs, "seeds": seeds, "objectives": [o.value for o in objectives],
        "reference_point": reference, "summary": summary, "lemonade_reaches_nsga2": reach, "bar_met": bar_met,
        "runs": results,
    }, indent=1) + "\n")
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
