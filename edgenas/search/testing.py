"""Reusable contract tests for search strategies (run by edgenas's own suite; usable for new strategies).

Subclass :class:`StrategyContract` in a test module and set ``strategy_name``;
pytest then runs every contract test against that strategy::

    class TestMyStrategy(StrategyContract):
        strategy_name = "my-strategy"

The contract drives the strategy with synthetic evaluations (error derived from
the architecture's size), so it checks the ask/tell protocol, not training.
"""

from __future__ import annotations

import numpy as np

from edgenas.search.archive import Evaluation, Status
from edgenas.search.objectives import Constraints, HardwareModel, Objective
from edgenas.search.strategies import SearchProblem, Strategy, StrategySettings, get_strategy
from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec

__all__ = ["StrategyContract", "contract_problem", "no_init", "sleep_task", "synthetic_evaluations"]


def contract_space() -> SearchSpace:
    return SearchSpace(
        name="contract", stem=StemSpec(8), head=HeadSpec(32), resolutions=(8,), widths=(0.5, 1.0),
        stages=(StageSpec(8, 1, (1, 2)), StageSpec(16, 2, (1, 2, 3)), StageSpec(24, 2, (1, 2))),
    )


def contract_problem(constraints: Constraints | None = None, batch_size: int = 6) -> SearchProblem:
    space = contract_space()
    constraints = constraints or Constraints()
    hardware = HardwareModel(space, 1, 10, "int8", None, constraints)
    return SearchProblem(space, (Objective.ERROR, Objective.SIZE, Objective.MEMORY), hardware, batch_size)


def synthetic_evaluations(problem: SearchProblem, candidates, fail_every: int = 0) -> list[Evaluation]:
    """Deterministic evaluations: bigger networks get a lower error; every ``fail_every``-th one fails."""
    X = np.stack([problem.space.encode(c.arch) for c in candidates])
    hw = problem.hardware.evaluate(X)
    G = problem.hardware.violations(hw)
    out = []
    for i, cand in enumerate(candidates):
        objectives = {o.value: float(hw[o][i]) for o in problem.hardware.available}
        failed = fail_every and (i % fail_every == fail_every - 1)
        error = 100.0 if failed else float(30.0 / (1.0 + objectives["size"] / 10.0))
        out.append(Evaluation(str(cand.arch), Status.FAILED if failed else Status.OK, {**objectives, "error": error},
                              accuracy=None if failed else 1 - error / 100, violations=tuple(G[i])))
    return out


class StrategyContract:
    strategy_name: str = ""

    def make(self, problem: SearchProblem, seed: int = 0) -> Strategy:
        strategy = get_strategy(self.strategy_name, StrategySettings(population=problem.batch_size))
        strategy.setup(problem, seed)
        return strategy

    def run(self, strategy: Strategy, problem: SearchProblem, generations: int, fail_every: int = 0) -> list[list[str]]:
        asked = []
        for _ in range(generations):
            candidates = strategy.ask()
            asked.append([str(c.arch) for c in candidates])
            strategy.tell(candidates, synthetic_evaluations(problem, candidates, fail_every))
        return asked

    def test_asks_valid_members_of_the_space(self):
        from edgenas.space.genome import Architecture

        problem = contract_problem()
        strategy = self.make(problem)
        space = problem.space
        for batch in self.run(strategy, problem, 4):
            assert 1 <= len(batch) <= 2 * problem.batch_size
            for text in batch:  # checked against the space's declaration directly, not through its own validation
                arch = Architecture.parse(text)
                assert arch.resolution in space.resolutions and arch.width in space.widths
                assert len(arch.stages) == len(space.stages)
                for blocks, stage in zip(arch.stages, space.stages):
                    assert len(blocks) in stage.depths
                    assert all(b.kernel in stage.kernels and b.expansion in stage.expansions for b in blocks)

    def test_is_deterministic_under_a_seed(self):
        problem = contract_problem()
        first = self.run(self.make(problem, seed=3), problem, 4)
        second = self.run(self.make(problem, seed=3), problem, 4)
        assert first == second
        assert self.run(self.make(problem, seed=4), problem, 4) != first

    def test_survives_failed_candidates(self):
        problem = contract_problem()
        strategy = self.make(problem)
        failed: set[str] = set()
        asked: set[str] = set()
        for generation in range(5):
            candidates = strategy.ask()
            texts = [str(c.arch) for c in candidates]
            assert not failed & set(texts)  # a failed network is not asked again ...
            assert all(c.parent not in failed for c in candidates)  # ... nor used as a parent
            if generation:
                assert set(texts) - asked  # and the search still proposes something new
            evaluations = synthetic_evaluations(problem, candidates, fail_every=2)
            failed |= {e.arch for e in evaluations if e.status == Status.FAILED}
            asked |= set(texts)
            strategy.tell(candidates, evaluations)
        assert failed

    def test_explores_beyond_the_first_batch(self):
        problem = contract_problem()
        batches = self.run(self.make(problem), problem, 5)
        assert len({a for batch in batches[1:] for a in batch} - set(batches[0])) >= problem.batch_size

    def test_handles_hard_constraints(self):
        problem = contract_problem(Constraints(max_size_kb=12.0))
        strategy = self.make(problem)
        batches = self.run(strategy, problem, 5)
        last = problem.space
        X = np.stack([last.encode(last.parse(a)) for a in batches[-1]])
        sizes = problem.hardware.evaluate(X)[Objective.SIZE]
        assert np.mean(sizes <= 12.0) >= 0.5  # the late batches are mostly feasible

    def test_parents_are_trained_networks_told_before(self):
        problem = contract_problem()
        strategy = self.make(problem)
        told: set[str] = set()
        for _ in range(5):
            candidates = strategy.ask()
            for cand in candidates:
                assert cand.parent is None or cand.parent in told
                assert cand.epochs is None or cand.epochs >= 1
                assert cand.parent is not None or cand.epochs is None  # only inheriting children train briefly
            evaluations = synthetic_evaluations(problem, candidates)
            told |= {e.arch for e in evaluations if e.status == Status.OK}
            strategy.tell(candidates, evaluations)

    def test_tell_needs_one_evaluation_per_candidate(self):
        import pytest

        problem = contract_problem()
        strategy = self.make(problem)
        candidates = strategy.ask()
        with pytest.raises(ValueError):
            strategy.tell(candidates, synthetic_evaluations(problem, candidates)[:-1])


# ----------------------------------------------------------------- executors
def no_init(*args) -> None:
    """A worker initializer that does nothing (executor tests and benchmarks)."""


def sleep_task(value, seconds: float = 0.0, pid_dir: str | None = None, fail: bool = False) -> dict:
    """A task of fixed duration for executor tests and benchmarks, importable on every worker: writes its process id
    to ``pid_dir/<value>.pid`` (so a test can kill the worker mid-task), sleeps, returns ``{"value", "pid"}``;
    ``fail`` raises ``ValueError`` instead (an error of the task itself)."""
    import os
    import time
    from pathlib import Path

    if pid_dir is not None:
        path = Path(pid_dir) / f"{value}.pid"
        path.with_suffix(".tmp").write_text(str(os.getpid()))
        path.with_suffix(".tmp").replace(path)
    time.sleep(seconds)
    if fail:
        raise ValueError(f"task {value} failed on purpose")
    return {"value": value, "pid": os.getpid()}
