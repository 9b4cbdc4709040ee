"""Throughput of the vectorized hardware objectives (architectures per second).

For every preset space: draw N random encoded architectures, then time
``CostModel.evaluate`` (parameters, MACs, size, peak memory) in interleaved
rounds (preset A, B, C, A, B, C, ...) so that machine noise hits every space
alike; report the median.  The same is done for latency prediction from the
shipped digits table (``Predictor.predict_batch``).

    python benchmarks/cost_model.py [--n 1000000] [--rounds 7] [--out benchmarks/results/cost_model.json]

Goal (issue #2): >= 1,000,000 architectures/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import edgenas
from edgenas.hardware.predict import Predictor
from edgenas.hardware.tables import LatencyTable
from edgenas.resources import shipped_dir
from edgenas.space.cost import CostModel
from edgenas.space.mbconv import get_space, list_spaces

GOAL = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="architectures per batch")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cost_model.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    setups = {}
    for name in list_spaces():
        space = get_space(name)
        xl, xu = space.bounds
        setups[name] = (CostModel(space, 3, 1000 if name == "imagenet" else 10), rng.integers(xl, xu + 1, (args.n, space.n_var)))
    table = LatencyTable.load(shipped_dir("latency_tables") / "local-ort_small-r8-w0.5-0.75-1_1ch-10cls_int8.json")
    space = table.search_space()
    predictor = Predictor(table, space, 1, 10)
    xl, xu = space.bounds

    class Latency:  # the same evaluate() shape as CostModel
        index = predictor.index

        def evaluate(self, X, precision=None):
            return predictor.predict_batch(X)

    setups["latency (small, 8x8 table)"] = (Latency(), rng.integers(xl, xu + 1, (args.n, space.n_var)))
    for model, X in setups.values():  # warm-up
        model.evaluate(X[:1000])
    times = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, (model, X) in setups.items():
            start = time.perf_counter()
            model.evaluate(X, "int8")
            times[name].append(time.perf_counter() - start)

    results = {}
    print(f"{'space':26s} {'genes':>5s} {'ops':>5s} {'median s':>9s} {'archs/s':>14s}  goal {GOAL:,}/s")
    for name, ts in times.items():
        model, X = setups[name]
        median = float(np.median(ts))
        rate = args.n / median
        results[name] = {
            "n_var": int(X.shape[1]),
            "n_ops": len(model.index),
            "median_seconds": median,
            "seconds": ts,
            "architectures_per_second": rate,
            "meets_goal": rate >= GOAL,
        }
        print(f"{name:26s} {X.shape[1]:5d} {len(model.index):5d} {median:9.3f} {rate:14,.0f}  {'ok' if rate >= GOAL else 'BELOW GOAL'}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "cost_model",
                "edgenas": edgenas.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "n": args.n,
                "rounds": args.rounds,
                "goal_architectures_per_second": GOAL,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
