"""Strategies on the tabular hardware benchmark (NAS-Bench-201 x devices): share of the true front's hypervolume.

Every edgenas strategy runs ``edgenas search --problem nb201:DATASET:DEVICE``
(the same code path as the CLI: archive, front.csv, hypervolume history), and
Optuna's NSGAIISampler and TPESampler (multivariate) run on the same lookups,
for several (dataset, device) pairs and seeds.  Scoring is independent of
edgenas's own objective code: it reads each run's evaluated architecture
strings in evaluation order, looks their test error and latency up in the
benchmark file by string, and computes pymoo's hypervolume of the non-dominated
points after 50/100/300/1000 evaluations with the objectives normalised by the
*true* front's ideal and nadir points and the reference point (1.1, 1.1),
divided by the true front's hypervolume on the same scale.

edgenas's strategies treat latency as a cheap objective (it comes from the
device's table at no cost, as in a real search) and count only accuracy
lookups as evaluations; Optuna's samplers see both objectives only after a
trial.  Optuna counts every trial, duplicates included.

    python benchmarks/hw_nas_bench.py [--pairs cifar100:pixel3,...] [--seeds 10] [--budgets 50,100,300,1000]
                                      [--strategies local,lemonade,nsga2,random,rl] [--optuna nsga2,tpe]
                                      [--data FILE] [--out benchmarks/results/hw_nas_bench.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

import edgenas
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search

HERE = Path(__file__).resolve().parent
DEFAULT_PAIRS = "cifar10:pixel3,cifar100:pixel2,ImageNet16-120:raspi4,cifar100:fpga,cifar10:samsung_s7,ImageNet16-120:gold_6226"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


# ------------------------------------------------------------ independent scoring
def load_table(path: Path) -> dict:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


class Scorer:
    """Share of the true front's hypervolume, from architecture strings alone (see the module docstring)."""

    def __init__(self, table: dict, dataset: str, device: str) -> None:
        self.row = {a: i for i, a in enumerate(table["archs"])}
        self.F = np.stack([100.0 - np.asarray(table["accuracy"][dataset], float),
                           np.asarray(table["latency_ms"][device], float)], axis=1)
        front = self.F[NonDominatedSorting().do(self.F, only_non_dominated_front=True)]
        self.ideal, self.nadir = front.min(axis=0), front.max(axis=0)
        self.hv = HV(ref_point=np.array([1.1, 1.1]))
        self.true_hv = self.hv(self._normalise(front))
        self.true_front_size = len(front)

    def _normalise(self, F: np.ndarray) -> np.ndarray:
        return (F - self.ideal) / np.where(self.nadir > self.ideal, self.nadir - self.ideal, 1.0)

    def share(self, archs: list[str]) -> float:
        if not archs:
            return 0.0
        N = self._normalise(self.F[[self.row[a] for a in archs]])
        N = N[np.all(N < 1.1, axis=1)]
        return float(self.hv(N) / self.true_hv) if len(N) else 0.0

    def curve(self, archs: list[str], budgets: list[int]) -> dict[int, float]:
        return {b: self.share(archs[:b]) for b in budgets}

    def evaluations_to(self, archs: list[str], level: float, step: int = 10) -> int | None:
        """Fewest evaluations (to ``step``) whose front reaches ``level`` of the true hypervolume."""
        for n in range(step, len(archs) + step, step):
            if self.share(archs[:n]) >= level:
                return min(n, len(archs))
        return None


# ----------------------------------------------------------------------- runs
def run_edgenas(strategy: str, problem: str, data: str | None, seed: int, budget: int, tmp: Path) -> tuple[list[str], float]:
    run_dir = tmp / f"{strategy}-{problem.replace(':', '-')}-{seed}"
    config = SearchConfig(problem=problem, problem_data=data, strategy=strategy, budget=budget, seed=seed,
                          run_dir=str(run_dir))
    start = time.perf_counter()
    run_search(config, progress=False, log=lambda m: None, report=False)
    seconds = time.perf_counter() - start
    with sqlite3.connect(run_dir / "archive.sqlite") as db:  # the evaluation order, read directly
        archs = [r[0] for r in db.execute("SELECT arch FROM evaluations WHERE status = 'ok' ORDER BY id")]
    return archs, seconds


def run_optuna(sampler: str, table: dict, dataset: str, device: str, seed: int, budget: int) -> tuple[list[str], float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    row = {a: i for i, a in enumerate(table["archs"])}
    acc, lat = table["accuracy"][dataset], table["latency_ms"][device]
    edges = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
    archs: list[str] = []

    def objective(trial):
        ops = [trial.suggest_categorical(f"edge{e}", OPS) for e in edges]
        arch = f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"
        archs.append(arch)
        i = row[arch]
        return 100.0 - acc[i], lat[i]

    made = (optuna.samplers.NSGAIISampler(seed=seed) if sampler == "nsga2"
            else optuna.samplers.TPESampler(seed=seed, multivariate=True))
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=made)
    start = time.perf_counter()
    study.optimize(objective, n_trials=budget)
    return archs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=DEFAULT_PAIRS, help="DATASET:DEVICE pairs, comma-separated")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="50,100,300,1000")
    parser.add_argument("--strategies", default="local,lemonade,nsga2,random,rl")
    parser.add_argument("--optuna", default="nsga2,tpe", help="Optuna samplers (nsga2, tpe), '' for none")
    parser.add_argument("--optuna-budget", type=int, default=None,
                        help="largest budget for Optuna's samplers (default: the largest of --budgets)")
    parser.add_argument("--data", default=None, help="another benchmark file of the same layout")
    parser.add_argument("--out", default=str(HERE / "results" / "hw_nas_bench.json"))
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    data_path = Path(args.data) if args.data else HERE / "data" / "nb201_hw.json.gz"
    table = load_table(data_path)
    methods = [s for s in args.strategies.split(",") if s] + [f"optuna-{s}" for s in args.optuna.split(",") if s]
    optuna_budget = args.optuna_budget or budgets[-1]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.pairs.split(","):
            dataset, device = pair.split(":")
            scorer = Scorer(table, dataset, device)
            per = results.setdefault(pair, {"true_front_size": scorer.true_front_size, "methods": {}})
            for seed in range(args.seeds):  # interleaved: machine drift hits every method alike
                for method in methods:
                    if method.startswith("optuna-"):
                        archs, seconds = run_optuna(method[7:], table, dataset, device, seed, optuna_budget)
                    else:
                        archs, seconds = run_edgenas(method, f"nb201:{dataset}:{device}", args.data, seed,
                                                     budgets[-1], Path(tmp))
                    m = per["methods"].setdefault(method, {"runs": []})
                    m["runs"].append({"seed": seed, "evaluations": len(archs), "seconds": round(seconds, 3),
                                      "share": scorer.curve(archs, [b for b in budgets if b <= len(archs)]),
                                      "to_0.95": scorer.evaluations_to(archs, 0.95),
                                      "to_0.99": scorer.evaluations_to(archs, 0.99)})
                print(f"{pair} seed {seed}: " + ", ".join(
                    f"{k} {v['runs'][-1]['share'].get(300, float('nan')):.3f}" for k, v in per["methods"].items()),
                    flush=True)
            summarise(per, budgets)
    report(results, budgets)
    out = {"benchmark": "hw_nas_bench", "edgenas": edgenas.__version__, "machine": platform.processor() or
           platform.machine(), "data": str(data_path.name), "seeds": args.seeds, "budgets": budgets,
           "scoring": "hypervolume share of the true front; objectives (error %, latency ms) normalised by the true "
                      "front's ideal and nadir; reference (1.1, 1.1)", "pairs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    plot(results, budgets, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out}")


def summarise(per: dict, budgets: list[int]) -> None:
    for m in per["methods"].values():
        runs = m["runs"]
        m["share"] = {str(b): {"mean": float(np.mean(v)), "sd": float(np.std(v))}
                      for b in budgets if (v := [r["share"][b] for r in runs if b in r["share"]])}
        for level in ("0.95", "0.99"):
            reached = [r[f"to_{level}"] for r in runs if r[f"to_{level}"] is not None]
            m[f"evaluations_to_{level}"] = {"median": float(np.median(reached)) if reached else None,
                                            "reached": f"{len(reached)}/{len(runs)}"}
        per_1000 = [1000 * r["seconds"] / max(r["evaluations"], 1) for r in runs]
        m["seconds_per_1000"] = float(np.median(per_1000))


def report(results: dict, budgets: list[int]) -> None:
    for pair, per in results.items():
        print(f"\n{pair} (true front: {per['true_front_size']} cells)")
        print(f"{'method':16s}" + "".join(f"{b:>16d}" for b in budgets) + f"{'to 0.95':>10s}{'to 0.99':>10s}{'s/1000':>8s}")
        for name, m in per["methods"].items():
            cells = "".join(f"{m['share'][str(b)]['mean']:>9.3f} +-{m['share'][str(b)]['sd']:.3f}"
                            if str(b) in m["share"] else f"{'-':>16s}" for b in budgets)
            to95, to99 = (m[f"evaluations_to_{lv}"]["median"] for lv in ("0.95", "0.99"))
            print(f"{name:16s}{cells}{to95 or '-':>10}{to99 or '-':>10}{m['seconds_per_1000']:>8.1f}")


def plot(results: dict, budgets: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(results)
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    for ax, pair in zip(axes.flat, pairs):
        for name, m in results[pair]["methods"].items():
            xs = [b for b in budgets if str(b) in m["share"]]
            ax.errorbar(xs, [m["share"][str(b)]["mean"] for b in xs], yerr=[m["share"][str(b)]["sd"] for b in xs],
                        label=name, marker="o", ms=3, capsize=2)
        ax.set_xscale("log")
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("share of true front's HV")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
