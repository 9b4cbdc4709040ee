"""How the search scales over workers and Ray (issue: scale out on Ray).

1. ``train``: networks per minute of a real training search (digits, ``small`` space at 8x8, two epochs each) with 1
   and 2 local worker processes and with Ray on this machine (``ray.init`` with 2 CPUs, one CPU per task); rounds
   interleaved, medians reported;
2. ``overhead``: the round trip of a task that does nothing (submit one, wait for it), in milliseconds, in-process,
   in a local worker process and as a Ray task: Ray's per-task overhead;
3. ``cluster``: a measured simulation of larger clusters: a multi-node ``ray.cluster_utils.Cluster`` of N one-CPU
   nodes on this machine, a real search (NSGA-II on the NAS-Bench-201 table) whose evaluations are Ray tasks that
   sleep for a fixed, per-architecture duration (log-normal, so a generation has slow members), in generational and
   in steady-state mode: evaluations per second and how busy the workers were, against N.

Run: ``python benchmarks/scaling.py [--parts train,overhead,cluster] [--rounds 2] [--nodes 1,2,4,8]``; writes
``benchmarks/results/scaling.json``.  Needs ``pip install -e '.[ray]'``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

import edgenas
from edgenas.search.config import SearchConfig
from edgenas.search.evaluators import TabularEvaluator
from edgenas.search.executors import ExecutorSettings, make_executor
from edgenas.search.loop import SearchRun, run_search
from edgenas.search.testing import no_init, sleep_task


# ----------------------------------------------------------------- 1. training throughput
def train_throughput(rounds: int, budget: int) -> dict:
    setups = {"local, 1 worker": dict(workers=1), "local, 2 workers": dict(workers=2),
              "ray, 2 CPUs": dict(executor="ray", threads=1)}
    seconds: dict[str, list[float]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name, extra in setups.items():
                config = SearchConfig(space="small", resolution=8, budget=budget, population=4, epochs=2, min_steps=0, seed=r,
                                      drift_check=False, run_dir=f"{tmp}/{r}-{len(seconds[name])}-{extra}", **extra)
                start = time.perf_counter()
                result = run_search(config, progress=False, log=lambda m: None)
                seconds[name].append(time.perf_counter() - start)
                print(f"train: {name}, round {r + 1}: {result.trained} networks in {seconds[name][-1]:.1f} s",
                      flush=True)
    return {name: {"seconds": s, "networks": budget, "networks_per_min": 60 * budget / statistics.median(s)}
            for name, s in seconds.items()}


# ----------------------------------------------------------------- 2. per-task overhead
def task_overhead(tasks: int) -> dict:
    out = {}
    for name, settings in (("in-process", ExecutorSettings(workers=1)), ("local process", ExecutorSettings(workers=2)),
                           ("ray task", ExecutorSettings(kind="ray", threads=1))):
        with make_executor(sleep_task, settings, no_init, ()) as executor:
            times = []
            for i in range(tasks + 5):  # the first few start workers: not counted
                start = time.perf_counter()
                executor.submit(i, (i, 0.0))
                executor.wait()
                if i >= 5:
                    times.append(1000 * (time.perf_counter() - start))
        out[name] = {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90))}
        print(f"overhead: {name}: {out[name]['median_ms']:.2f} ms per task (median of {tasks}), "
              f"p90 {out[name]['p90_ms']:.2f} ms", flush=True)
    out["ray_overhead_ms"] = out["ray task"]["median_ms"] - out["in-process"]["median_ms"]
    return out


# ----------------------------------------------------------------- 3. larger clusters, simulated
class TimedTabular(TabularEvaluator):
    """The tabular benchmark's accuracies, each delivered by a Ray task that sleeps for the architecture's fixed
    synthetic duration (a stand-in for training of varying cost)."""

    def __init__(self, inner: TabularEvaluator, base_s: float, sigma: float) -> None:
        super().__init__(inner.problem, inner.space)
        self.base_s, self.sigma, self.busy_s = base_s, sigma, 0.0
        self.executor = None

    def duration(self, arch: str) -> float:
        rng = np.random.default_rng(zlib.crc32(arch.encode()))
        return float(self.base_s * rng.lognormal(0.0, self.sigma))

    def open(self, run_dir) -> None:
        self.executor = make_executor(sleep_task, ExecutorSettings(kind="ray", threads=1), no_init, ())

    @property
    def slots(self) -> int:
        return self.executor.slots

    @property
    def pending(self) -> int:
        return self.executor.pending

    def submit(self, job, archive) -> None:
        seconds = self.duration(job[1])
        self.busy_s += seconds
        self.executor.submit(job, (job[0], seconds))

    def wait(self):
        job, _, _ = self.executor.wait()
        return job, self.lookup(job)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None


def cluster_throughput(nodes: list[int], per_node: int, base_s: float, sigma: float) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    out = {}
    for n in nodes:
        cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for _ in range(n):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            row = {}
            for mode in ("generational", "steady"):
                with tempfile.TemporaryDirectory() as tmp:
                    config = SearchConfig(problem="nb201:cifar10:pixel3", strategy="nsga2", population=2 * n,
                                          budget=per_node * n, mode=mode, seed=0, run_dir=f"{tmp}/r")
                    run = SearchRun(config, progress=False, log=lambda m: None, report=False)
                    evaluator = run.setup.evaluator = TimedTabular(run.setup.evaluator, base_s, sigma)
                    start = time.perf_counter()
                    with run:
                        while run.step():
                            pass
                    wall = time.perf_counter() - start
                    evaluations = run.result.trained
                row[mode] = {"evaluations": evaluations, "seconds": wall, "per_s": evaluations / wall,
                             "worker_busy": evaluator.busy_s / (n * wall)}
                print(f"cluster: {n} node(s), {mode}: {evaluations} evaluations in {wall:.1f} s = "
                      f"{row[mode]['per_s']:.2f}/s, workers busy {100 * row[mode]['worker_busy']:.0f}%", flush=True)
            row["steady_over_generational"] = row["steady"]["per_s"] / row["generational"]["per_s"]
            out[str(n)] = row
        finally:
            ray.shutdown()
            cluster.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="train,overhead,cluster")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget", type=int, default=12, help="networks per training search")
    parser.add_argument("--tasks", type=int, default=200, help="no-op tasks per executor for the overhead")
    parser.add_argument("--nodes", default="1,2,4,8")
    parser.add_argument("--per-node", type=int, default=24, help="evaluations per node in the cluster simulation")
    parser.add_argument("--base-s", type=float, default=0.25, help="median synthetic evaluation (s)")
    parser.add_argument("--sigma", type=float, default=0.6, help="log-normal spread of the synthetic durations")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "scaling.json"))
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    import os

    import ray

    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                          "edgenas": edgenas.__version__}}
    if "overhead" in parts:
        result["overhead"] = task_overhead(args.tasks)
    if "train" in parts:
        result["train"] = train_throughput(args.rounds, args.budget)
    if "cluster" in parts:
        result["cluster"] = {"base_s": args.base_s, "sigma": args.sigma, "strategy": "nsga2",
                             "population": "2 x nodes",
                             "nodes": cluster_throughput([int(n) for n in args.nodes.split(",")], args.per_node,
                                                         args.base_s, args.sigma)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    Path(args.out).write_text(json.dumps({**previous, **result}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
