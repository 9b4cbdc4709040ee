"""NSGA-II on the integer-encoded genome, with pymoo.

pymoo's NSGA-II does the non-dominated sorting, crowding distance and
constraint handling; edgenas supplies the operators that know the genome: an
initial population spread over the whole range of hardware cost (drawn from
many uniform samples, whose cheap objectives cost nothing to compute),
uniform crossover of encodings, mutation by one architectural move
(:meth:`SearchSpace.mutate`), a repair that zeroes inactive genes (so equal
networks have equal encodings and duplicates are eliminated), and pymoo's
duplicate elimination.  The search loop drives it through pymoo's ask/tell
interface.
"""

from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.problems.static import StaticProblem
from pymoo.core.termination import NoTermination

from edgenas.archive import Evaluation
from edgenas.space import SearchSpace
from edgenas.strategies.base import Candidate, SearchProblem, Strategy, objective_matrix


class CostSpreadSampling(Sampling):
    """``n`` architectures at evenly spaced quantiles of hardware cost among ``50 n`` uniform samples.

    Cost is the mean rank of an architecture's hardware objectives; feasible
    samples (within the hard limits) are preferred.  Uniform samples crowd in
    the middle of the cost range; a first generation spread over it puts the
    small, cheap networks (where accuracy starts to trade against cost) on the
    map from the start.
    """

    def __init__(self, problem: SearchProblem, rng: np.random.Generator, oversample: int = 50) -> None:
        super().__init__()
        self.problem, self.rng, self.oversample = problem, rng, oversample

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        space, hardware = self.problem.space, self.problem.hardware
        X = space.canonical_encoding(np.stack([space.encode(space.sample(self.rng))
                                               for _ in range(self.oversample * n_samples)]))
        X = np.unique(X, axis=0)
        values = hardware.evaluate(X)
        G = hardware.violations(values)
        feasible = np.all(G <= 0, axis=1) if G.shape[1] else np.ones(len(X), dtype=bool)
        if feasible.sum() >= n_samples:
            X = X[feasible]
            values = {k: v[feasible] for k, v in values.items()}
        ranks = np.mean([np.argsort(np.argsort(v)) for v in values.values()], axis=0)
        order = np.argsort(ranks, kind="stable")
        picks = order[np.round(np.linspace(0, len(order) - 1, n_samples)).astype(int)]
        return X[picks]


class ArchitectureMutation(Mutation):
    """One architectural move (a neighbour); pymoo applies it to each individual with probability ``prob``."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator, prob: float = 0.9) -> None:
        super().__init__(prob=prob)
        self.space, self.rng = space, rng

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        X = np.asarray(X).round().astype(np.int64)
        return np.stack([self.space.encode(self.space.mutate(self.space.decode(x), self.rng)) for x in X]) if len(X) else X


class CanonicalRepair(Repair):
    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, X, **kwargs):
        return self.space.canonical_encoding(np.asarray(X).round().astype(np.int64))


class NSGA2Strategy(Strategy):
    name = "nsga2"

    def __init__(self, population: int | None = None) -> None:
        self.population = population

    def _setup(self, problem: SearchProblem, seed: int) -> None:
        space = problem.space
        xl, xu = space.bounds
        self.pymoo_problem = Problem(
            n_var=space.n_var, n_obj=len(problem.objectives), n_ieq_constr=problem.n_constraints, xl=xl, xu=xu,
            vtype=int,
        )
        self.algorithm = NSGA2(
            pop_size=self.population or problem.batch_size,
            sampling=CostSpreadSampling(problem, self.rng),
            crossover=UniformCrossover(prob=0.9),
            mutation=ArchitectureMutation(space, self.rng),
            repair=CanonicalRepair(space),
            eliminate_duplicates=True,
        )
        self.algorithm.setup(self.pymoo_problem, termination=NoTermination(), seed=seed, verbose=False)

    def _ask(self) -> list[Candidate]:
        self.pop = self.algorithm.ask()
        X = self.problem.space.canonical_encoding(np.asarray(self.pop.get("X")).round().astype(np.int64))
        return [Candidate(self.problem.space.decode(x)) for x in X]

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        F, G = objective_matrix(self.problem, evaluations)
        kwargs = {"F": F}
        if G.shape[1]:
            kwargs["G"] = G
        Evaluator().eval(StaticProblem(self.pymoo_problem, **kwargs), self.pop)
        self.algorithm.tell(infills=self.pop)
