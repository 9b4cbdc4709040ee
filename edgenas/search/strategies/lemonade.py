"""LEMONADE: Lamarckian evolution with network morphisms and KDE-based sampling (Elsken, Metzen, Hutter, ICLR 2019).

Two ideas make it cheap.  Children are made from trained parents by network
morphisms (:mod:`edgenas.space.morphisms`) and inherit their weights
(:mod:`edgenas.nn.inherit`), so a child needs a short fine-tune
(``finetune_epochs``) instead of training from scratch.  And only children
that fill sparse regions of the front, judged on the *cheap* objectives (those
the latency table and the cost model give instantly), are trained at all.

One generation:

1. the population is the non-dominated set of the trained, feasible networks
   (pymoo's non-dominated sorting over all objectives);
2. a kernel density estimate (``scipy.stats.gaussian_kde``) is fitted to the
   population's cheap objectives (logarithms, standardised);
3. ``oversample x batch`` children are made: a parent drawn with probability
   proportional to 1 / density, then one random morphism of a kind drawn
   uniformly; children seen before or breaking a hard limit are dropped;
4. ``batch`` children are accepted, drawn without replacement with probability
   proportional to 1 / density at their cheap objectives, and asked for with
   their parent and the fine-tune epochs.

The first generation is spread over the cost range and trained from scratch
(:func:`~edgenas.search.strategies.base.cost_spread`).  When no child can be made
(every morphism leads somewhere seen or infeasible), the batch is filled with
random feasible networks trained from scratch.  Where the density estimate is
degenerate (fewer points than dimensions, or points on a line), it is fitted in
the subspace of the main principal directions; a single point gives uniform
probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gaussian_kde

from edgenas.search.archive import Evaluation
from edgenas.search.objectives import Objective
from edgenas.search.pareto import non_dominated
from edgenas.search.strategies.base import Candidate, SearchProblem, Strategy, StrategySettings, cost_spread
from edgenas.space.morphisms import apply_random_morphism

__all__ = ["Lemonade", "inverse_density_probabilities"]


def inverse_density_probabilities(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Probabilities over ``queries`` (Q x D) proportional to 1 / the KDE density of ``points`` (N x D, positive).

    Values are log-scaled and standardised; the KDE is fitted in the subspace
    of the principal directions that carry at least 1% of the variance.  Cheap
    objectives are strongly correlated (latency, size and memory grow together),
    and a full-dimensional KDE of nearly collinear points has a needle-thin
    kernel across the line that makes density noise; few points (fewer than
    dimensions) also need the subspace.  Degenerate cases (one point,
    identical points) give uniform probabilities.
    """
    Z = np.log(np.maximum(np.asarray(points, dtype=float), 1e-12))
    Q = np.log(np.maximum(np.asarray(queries, dtype=float), 1e-12))
    uniform = np.full(len(Q), 1.0 / max(len(Q), 1))
    if len(Z) < 2 or len(Q) == 0:
        return uniform
    mean, std = Z.mean(axis=0), Z.std(axis=0)
    std[std == 0] = 1.0
    Z, Q = (Z - mean) / std, (Q - mean) / std
    _, S, Vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    rank = min(int(np.sum(S > 0.1 * S.max())) if S.max() > 1e-9 else 0, len(Z) - 1)
    if rank == 0:
        return uniform
    basis = Vt[:rank]
    try:
        log_density = gaussian_kde((Z @ basis.T).T).logpdf((Q @ basis.T).T)
    except np.linalg.LinAlgError:
        return uniform
    return _probabilities_from_log_weights(-np.asarray(log_density, dtype=float))


#: The smallest probability relative to the largest: weights never underflow to zero.
WEIGHT_FLOOR = 1e-6


def _probabilities_from_log_weights(log_weight: np.ndarray) -> np.ndarray:
    """Normalised probabilities from log weights, computed in log space and floored at ``WEIGHT_FLOOR`` of the
    largest, so every query keeps a non-zero chance (``choice(replace=False)`` can always draw them all)."""
    log_weight = np.where(np.isfinite(log_weight), log_weight, np.nan)
    if np.all(np.isnan(log_weight)):
        return np.full(len(log_weight), 1.0 / max(len(log_weight), 1))
    top = np.nanmax(log_weight)
    log_weight = np.nan_to_num(log_weight, nan=top)  # an undefined density counts as the sparsest region
    weight = np.maximum(np.exp(log_weight - top), WEIGHT_FLOOR)
    return weight / weight.sum()


class Lemonade(Strategy):
    """See the module docstring."""

    name = "lemonade"
    steady_state = True  # each result joins the population (and its front) as it arrives

    def __init__(self, settings: StrategySettings | None = None, oversample: int = 8) -> None:
        settings = settings or StrategySettings()
        self.population = settings.population
        self.finetune_epochs = settings.finetune_epochs
        self.oversample = oversample

    def _setup(self, problem: SearchProblem, seed: int) -> None:
        self.batch = self.population or problem.batch_size
        self.cheap = tuple(o for o in problem.objectives if o is not Objective.ERROR) or problem.hardware.available
        self.evaluations: list[Evaluation] = []
        self.morphisms = problem.space.supports_morphisms
        if not self.morphisms:
            self.notes.append(f"lemonade: space '{problem.space.name}' has no weights to inherit, so children are made "
                              "by plain mutations (one architectural move) and evaluated without inheritance; the "
                              "KDE-guided selection of parents and children is unchanged")

    # ------------------------------------------------------------ population
    def front(self) -> list[Evaluation]:
        """The current population: non-dominated trained, feasible evaluations."""
        return non_dominated(self.evaluations, self.problem.objectives)

    def _cheap_values(self, X: np.ndarray) -> np.ndarray:
        values = self.problem.hardware.evaluate(X)
        return np.stack([values[o] for o in self.cheap], axis=1)

    # ------------------------------------------------------------- ask / tell
    def _ask(self) -> list[Candidate]:
        space = self.problem.space
        front = self.front()
        candidates = self._children(front) if front else []
        missing = (self.wanted or self.batch) - len(candidates)
        if missing > 0:  # first generation, or no child left to make
            if not self.evaluations:
                extra = [space.decode(x) for x in cost_spread(self.problem, self.rng, missing)]
            else:
                extra = self.problem.sample_feasible(self.rng, missing, self.seen, draw=20 * missing)[:missing]
            for arch in extra:
                if str(arch) not in self.seen:
                    self.seen.add(str(arch))
                    candidates.append(Candidate(arch))
        return candidates  # none: everything is seen or infeasible; the base asks a random one, the loop says why

    def _children(self, front: list[Evaluation]) -> list[Candidate]:
        space, hardware = self.problem.space, self.problem.hardware
        parents = [space.parse(e.arch) for e in front]
        cheap = self._cheap_values(np.stack([space.encode(a) for a in parents]))
        p_parent = inverse_density_probabilities(cheap, cheap)
        children: dict[str, tuple] = {}
        for _ in range(self.oversample * self.batch):
            i = int(self.rng.choice(len(parents), p=p_parent))
            if self.morphisms:
                morph = apply_random_morphism(space, parents[i], self.rng)
                if morph is None:
                    continue
                child = morph.child
            else:
                child = space.mutate(parents[i], self.rng)
            key = str(child)
            if key not in self.seen and key not in children:
                children[key] = (child, parents[i])
        if not children:
            return []
        archs = [c for c, _ in children.values()]
        X = np.stack([space.encode(a) for a in archs])
        values = hardware.evaluate(X)
        keep = np.flatnonzero(hardware.feasible(values))
        if not len(keep):
            return []
        child_cheap = np.stack([values[o] for o in self.cheap], axis=1)[keep]
        p_accept = inverse_density_probabilities(cheap, child_cheap)
        n = min(self.wanted or self.batch, int(np.count_nonzero(p_accept)))  # take what is available (all have weight: floored)
        accepted = self.rng.choice(len(keep), size=n, replace=False, p=p_accept)
        out = []
        for j in sorted(accepted):
            child, parent = children[str(archs[keep[j]])]
            self.seen.add(str(child))
            out.append(Candidate(child, parent=str(parent), epochs=self.finetune_epochs) if self.morphisms
                       else Candidate(child))
        return out

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        self.evaluations.extend(evaluations)
