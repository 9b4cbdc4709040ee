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

In steady-state mode (``--mode steady``) each result is told as it arrives:
pymoo merges it into the population and its survival keeps the best
``population`` (a (mu + 1) NSGA-II), and each ask mates the current population
for as many offspring as there are free workers.  The first generation is told
whole (mating needs a population), so while it is evaluated no new candidate is
asked.
"""

from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.ux import UniformCrossover
from pymoo.problems.static import StaticProblem

from edgenas.search.archive import Evaluation
from edgenas.search.strategies.base import Candidate, SearchProblem, Strategy, cost_spread, objective_matrix
from edgenas.space.protocol import Space as SearchSpace


class CostSpreadSampling(Sampling):
    """pymoo sampling of :func:`~edgenas.search.strategies.base.cost_spread`: a first generation spread over the cost range."""

    def __init__(self, problem: SearchProblem, rng: np.random.Generator, oversample: int = 50) -> None:
        super().__init__()
        self.problem, self.rng, self.oversample = problem, rng, oversample

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        return cost_spread(self.problem, self.rng, n_samples, self.oversample)


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
    steady_state = True

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
        self.individuals: dict[str, object] = {}  # asked and not yet told: architecture -> pymoo individual
        self.initial: list[str] = []  # the first generation, told to pymoo whole
        self.initial_told: dict[str, Evaluation] = {}

    def can_ask(self) -> bool:
        return self.algorithm.is_initialized or not self.initial

    def _ask(self) -> list[Candidate]:
        if self.algorithm.is_initialized and self.wanted:
            self.algorithm.n_offsprings = self.wanted
        pop = self.algorithm.ask()
        if self.algorithm.is_initialized:
            self.algorithm.n_offsprings = self.algorithm.pop_size
        if pop is None or len(pop) == 0:  # duplicate elimination found nothing new: the space is exhausted
            return []
        X = self.problem.space.canonical_encoding(np.asarray(pop.get("X")).round().astype(np.int64))
        archs = [self.problem.space.decode(x) for x in X]
        for arch, individual in zip(archs, pop):
            self.individuals[str(arch)] = individual
        if not self.algorithm.is_initialized:
            self.initial = [str(a) for a in archs]
        return [Candidate(a) for a in archs]

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        # Each architecture once: in steady-state mode a candidate asked again while it was being evaluated is told
        # with the first.
        told = list({str(c.arch): e for c, e in zip(candidates, evaluations) if str(c.arch) in self.individuals}.items())
        if not told:  # the base class's fallback candidate: nothing of pymoo's to tell
            return
        if not self.algorithm.is_initialized:  # the first generation goes to pymoo whole, in ask order
            self.initial_told.update(told)
            if not all(t in self.initial_told for t in self.initial):
                return
            told = [(t, self.initial_told[t]) for t in self.initial]
        pop = Population.create(*[self.individuals.pop(t) for t, _ in told])
        F, G = objective_matrix(self.problem, [e for _, e in told])
        kwargs = {"F": F}
        if G.shape[1]:
            kwargs["G"] = G
        Evaluator().eval(StaticProblem(self.pymoo_problem, **kwargs), pop)
        self.algorithm.tell(infills=pop)
