"""Predictor-guided Pareto local search: the neighbours of the front, ranked by a learned accuracy predictor.

Two findings from the NAS literature, combined for the multi-objective,
hardware-aware case where the hardware objectives are cheap (a latency table
or a lookup) and only accuracy costs an evaluation:

- local search around the best architectures is among the strongest
  strategies on NAS benchmarks (White, Nolen, Hutter: "Exploring the loss
  landscape in neural architecture search", UAI 2021); here the neighbourhood
  is that of the current Pareto front (every architecture one move away from a
  member of the first two non-dominated ranks);
- a cheap predictor of accuracy trained on the evaluations so far picks which
  neighbours deserve an evaluation (BANANAS, White et al., AAAI 2021: an
  ensemble predictor on the path encoding, with Thompson sampling).

One generation:

1. the pool: unseen neighbours of the members of the first two
   non-dominated ranks that are within the hard limits (random feasible
   architectures where the neighbourhood is used up);
2. an ensemble of randomised trees (scikit-learn's ``ExtraTreesRegressor``)
   is fitted to the error of every successful evaluation, on the space's
   features (the path encoding for NAS-Bench-201 cells, a one-hot genome
   otherwise);
3. the batch is filled greedily: for each slot one tree of the ensemble is
   drawn (Thompson sampling), and the pool member whose sampled error, with
   its exact cheap objectives, adds the most to the front is taken; the front
   then counts it at the ensemble's mean error (so the batch spreads out).
   "Adds the most" is the exact hypervolume improvement when there is one
   cheap objective (error and latency), and otherwise the predicted error gain
   over the front members that are at least as cheap on every cheap
   objective.

The first generation (twice the batch) is spread over the cost range
(:func:`~edgenas.search.strategies.base.cost_spread`).  All randomness comes from the
strategy's generator, so a resumed run asks the same candidates.
"""

from __future__ import annotations

import numpy as np

from edgenas.search.archive import Evaluation, Status
from edgenas.search.objectives import Objective
from edgenas.search.strategies.base import Candidate, SearchProblem, Strategy, StrategySettings, cost_spread
from edgenas.space.protocol import features

__all__ = ["PredictorLocalSearch", "hypervolume_improvement_2d"]

#: Non-dominated ranks whose neighbours form the pool.
PARENT_RANKS = 2
N_TREES = 12
#: Random architectures whose costliest sets the reference of the hypervolume gain.
COST_SAMPLES = 20_000


def hypervolume_improvement_2d(error: np.ndarray, cost: np.ndarray, front: np.ndarray,
                               reference: tuple[float, float]) -> np.ndarray:
    """Exact hypervolume each candidate point ``(error[i], cost[i])`` would add to a two-objective front.

    ``front`` is K x 2 (error, cost), non-dominated; both objectives are
    minimised against ``reference``.  Over the cost axis the front is a
    staircase: from each member's cost to the next the best error so far is
    the threshold, and a candidate at cost ``c`` adds, on every stretch to the
    right of ``c``, its width times how far the candidate's error is below the
    threshold.
    """
    front = front[np.argsort(front[:, 1], kind="stable")] if len(front) else np.zeros((0, 2))
    edges = np.concatenate([front[:, 1], [reference[1]]])
    starts = np.concatenate([[-np.inf], edges[:-1]])
    thresholds = np.minimum.accumulate(np.concatenate([[reference[0]], front[:, 0]]))
    width = np.clip(edges[None, :] - np.maximum(starts[None, :], cost[:, None]), 0, None)
    return (width * np.clip(thresholds[None, :] - error[:, None], 0, None)).sum(axis=1)


def _gain_over_cheaper(error: np.ndarray, cheap: np.ndarray, front_error: np.ndarray, front_cheap: np.ndarray,
                       worst: float) -> np.ndarray:
    """How far each candidate's error is below the best front member at least as cheap on every cheap objective."""
    if not len(front_error):
        return worst - error
    covers = np.all(front_cheap[None, :, :] <= cheap[:, None, :], axis=2)  # candidate x member
    best = np.where(covers, front_error[None, :], worst).min(axis=1)
    return np.clip(best - error, 0, None)


class PredictorLocalSearch(Strategy):
    """See the module docstring."""

    name = "local"

    def __init__(self, settings: StrategySettings | None = None) -> None:
        self.population = (settings or StrategySettings()).population

    def _setup(self, problem: SearchProblem, seed: int) -> None:
        self.batch = self.population or problem.batch_size
        self.cheap = tuple(o for o in problem.objectives if o is not Objective.ERROR) or problem.hardware.available
        self.evaluations: list[Evaluation] = []
        self._encoded: dict[str, np.ndarray] = {}  # encodings of evaluated architectures, by string
        # The hypervolume gain is measured up to 1.1 x the costliest of many random architectures: a reference at
        # the far end of the space keeps the accurate, costly end of the front worth exploring.
        xl, xu = problem.space.bounds
        X = problem.space.canonical_encoding(self.rng.integers(xl, xu + 1, size=(COST_SAMPLES, len(xl))))
        self.cost_reference = 1.1 * self._cheap(X).max(axis=0)

    def _cheap(self, X: np.ndarray) -> np.ndarray:
        values = self.problem.hardware.evaluate(X)
        return np.stack([values[o] for o in self.cheap], axis=1)

    # ------------------------------------------------------------- ask / tell
    def _ask(self) -> list[Candidate]:
        space = self.problem.space
        if not self.evaluations:
            archs = [space.decode(x) for x in cost_spread(self.problem, self.rng, 2 * self.batch)]
            return [Candidate(a) for a in dict.fromkeys(archs) if str(a) not in self.seen]
        return [Candidate(a) for a in self._select(self._pool())]

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        self.evaluations.extend(evaluations)
        for cand, ev in zip(candidates, evaluations):
            self._encoded[ev.arch] = self.problem.space.encode(cand.arch)

    # --------------------------------------------------------------- the pool
    def _ok(self) -> list[Evaluation]:
        return [e for e in self.evaluations if e.status == Status.OK and all(v <= 0 for v in e.violations)]

    def _pool(self) -> list:
        """Unseen, feasible neighbours of the first non-dominated ranks; random feasible ones where too few."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        space, hardware = self.problem.space, self.problem.hardware
        ok = self._ok()
        pool: dict[str, object] = {}
        if ok:
            F = np.array([[e.objectives[o.value] for o in self.problem.objectives] for e in ok])
            ranks = NonDominatedSorting().do(F, n_stop_if_ranked=len(F))
            for i in np.concatenate(ranks[:PARENT_RANKS]):
                for arch in space.neighbors(space.decode(self._encoded[ok[int(i)].arch])):
                    key = str(arch)
                    if key not in self.seen:
                        pool.setdefault(key, arch)
        archs = list(pool.values())
        if archs:
            feasible = hardware.feasible(hardware.evaluate(np.stack([space.encode(a) for a in archs])))
            archs = [a for a, f in zip(archs, feasible) if f]
        if len(archs) < self.batch:  # too few neighbours: random feasible ones
            archs += self.problem.sample_feasible(self.rng, self.batch - len(archs), self.seen | pool.keys(),
                                                  draw=4 * self.batch, rounds=20)
        return archs

    # ------------------------------------------------------------- selection
    def _select(self, pool: list) -> list:
        from sklearn.ensemble import ExtraTreesRegressor

        ok = self._ok()
        if not pool or len(ok) < 2:  # nothing to rank, or nothing to learn from: take the pool in drawn order
            order = self.rng.permutation(len(pool))[: self.batch]
            return [pool[int(i)] for i in order]
        space = self.problem.space
        X_ok = np.stack([self._encoded[e.arch] for e in ok])
        y = np.array([e.objectives[Objective.ERROR.value] for e in ok])
        model = ExtraTreesRegressor(n_estimators=N_TREES, max_features=0.3, random_state=int(self.rng.integers(2**31)),
                                    n_jobs=1).fit(features(space, X_ok), y)
        X_pool = np.stack([space.encode(a) for a in pool])
        F_pool = features(space, X_pool)
        samples = np.stack([tree.predict(F_pool) for tree in model.estimators_])  # trees x pool
        mean = samples.mean(axis=0)
        cheap_pool = self._cheap(X_pool)
        front_err, front_cheap = self._front(ok)
        error_reference = self._error_reference(front_err, front_cheap)
        picks: list[int] = []
        for _ in range(min(self.batch, len(pool))):
            sampled = samples[int(self.rng.integers(len(samples)))]
            gain = self._gain(sampled, cheap_pool, front_err, front_cheap, error_reference)
            gain[picks] = -np.inf
            best = np.flatnonzero(gain == gain.max())
            j = int(best[self.rng.integers(len(best))])  # ties (no gain anywhere) broken at random
            picks.append(j)
            front_err = np.append(front_err, mean[j])
            front_cheap = np.vstack([front_cheap, cheap_pool[j]])
        return [pool[j] for j in picks]

    def _front(self, ok: list[Evaluation]) -> tuple[np.ndarray, np.ndarray]:
        err = np.array([e.objectives[Objective.ERROR.value] for e in ok])
        cheap = np.array([[e.objectives[o.value] for o in self.cheap] for e in ok])
        return err, cheap

    def _error_reference(self, front_err: np.ndarray, front_cheap: np.ndarray) -> float:
        """Just beyond the worst error of the current front (of the real evaluations, fixed for the generation: not
        of every evaluation, nor moved by the batch's fantasies, so the cheapest corner never looks limitlessly
        valuable)."""
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        nd = NonDominatedSorting().do(np.column_stack([front_err, front_cheap]), only_non_dominated_front=True)
        return float(front_err[nd].max()) + 0.1 * max(float(np.ptp(front_err[nd])), 1e-9)

    def _gain(self, error: np.ndarray, cheap: np.ndarray, front_err: np.ndarray, front_cheap: np.ndarray,
              error_reference: float) -> np.ndarray:
        if cheap.shape[1] == 1:
            front = np.stack([front_err, front_cheap[:, 0]], axis=1)
            reference = (error_reference, float(max(self.cost_reference[0], cheap.max(), front_cheap.max())))
            return hypervolume_improvement_2d(error, cheap[:, 0], front, reference)
        return _gain_over_cheaper(error, cheap, front_err, front_cheap, error_reference)
