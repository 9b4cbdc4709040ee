"""The contract every search strategy keeps: ask for candidates, be told their evaluations.

A strategy is set up once with the :class:`SearchProblem` (space, objectives,
the hardware model for cheap objectives and constraints) and a seed.  Then the
search loop calls :meth:`Strategy.ask` for a batch of candidates, evaluates
them (training only what is new and feasible), and calls :meth:`Strategy.tell`
with the evaluations in the same order.  Strategies draw all randomness from
``np.random.default_rng(seed)`` made in :meth:`setup`, and given the same
evaluations they ask the same candidates: that is what lets a killed run
resume by replaying from its archive without training anything twice.

A strategy with ``steady_state = True`` also keeps the steady-state contract
(``--mode steady``): :meth:`Strategy.ask` may be called with ``n`` (the workers
that are free) while earlier candidates are still being evaluated, and
:meth:`Strategy.tell` receives any of the outstanding candidates, one or a few
at a time, in the order their evaluations finish.  :meth:`Strategy.can_ask`
says whether it can propose something before more results come back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np

from edgenas.search.archive import Evaluation
from edgenas.search.objectives import CheapObjectives, Objective
from edgenas.space.genome import Architecture
from edgenas.space.protocol import Space

__all__ = ["Candidate", "SearchProblem", "Strategy", "StrategySettings", "cost_spread", "objective_matrix"]

#: The error assigned to candidates that could not be trained or are infeasible (worst possible).
WORST_ERROR_PCT = 100.0


@dataclass(frozen=True)
class Candidate:
    """An architecture to evaluate.

    ``parent`` (an architecture string) asks for weight inheritance from that
    evaluated network; ``epochs`` overrides the run's training epochs (a short
    fine-tune for an inheriting child).  Without the parent's weights the
    candidate is trained from scratch with the run's epochs.
    """

    arch: Architecture
    parent: str | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class StrategySettings:
    """The knobs strategies read (each strategy uses those it needs)."""

    population: int | None = None  # batch size; default: the problem's batch size
    finetune_epochs: int = 2  # lemonade: epochs of a child that inherits its parent's weights
    reward: str = "penalty"  # rl: "penalty" or "mnasnet"
    targets: tuple[tuple[str, float], ...] = ()  # rl: (objective, target) pairs, e.g. (("latency", 0.5),)
    penalty_weight: float = 0.5  # rl: lambda of the penalty reward
    mnasnet_alpha: float = -0.07  # rl: exponent within the latency target
    mnasnet_beta: float = -0.07  # rl: exponent beyond it
    entropy_weight: float = 0.01  # rl: entropy bonus


@dataclass(frozen=True)
class SearchProblem:
    space: Space
    objectives: tuple[Objective, ...]
    hardware: CheapObjectives
    batch_size: int = 8

    @property
    def n_constraints(self) -> int:
        return len(self.hardware.constraints.items())

    def sample_feasible(self, rng: np.random.Generator, n: int, exclude: Container[str] = (), *,
                        draw: int | None = None, rounds: int = 1) -> list:
        """Distinct random architectures within the hard limits and not in ``exclude`` (architecture strings), in
        the order drawn.  Draws ``draw`` (default ``4 * n``) uniform samples a round, for at most ``rounds`` rounds,
        until at least ``n`` are collected; returns every one collected in those rounds (possibly more than ``n``,
        possibly fewer where the limits reject almost everything): callers take what they need."""
        space, hardware = self.space, self.hardware
        draw = draw or 4 * max(n, 1)
        found: dict[str, object] = {}
        for _ in range(rounds):
            if len(found) >= n:
                break
            archs = [space.sample(rng) for _ in range(draw)]
            feasible = hardware.feasible(hardware.evaluate(np.stack([space.encode(a) for a in archs])))
            for arch, ok in zip(archs, feasible):
                key = str(arch)
                if ok and key not in exclude:
                    found.setdefault(key, arch)
        return list(found.values())


def objective_matrix(problem: SearchProblem, evaluations: Sequence[Evaluation]) -> tuple[np.ndarray, np.ndarray]:
    """(F, G): objectives (N x M, natural units, minimised) and constraint violations (N x K)."""
    F = np.array([[ev.objectives[o.value] for o in problem.objectives] for ev in evaluations], dtype=float)
    G = np.array([list(ev.violations) for ev in evaluations], dtype=float).reshape(len(evaluations), problem.n_constraints)
    return F, G


def cost_spread(problem: SearchProblem, rng: np.random.Generator, n: int, oversample: int = 50) -> np.ndarray:
    """Encodings of ``n`` architectures at evenly spaced quantiles of hardware cost among ``oversample * n`` samples.

    Cost is the mean rank of an architecture's hardware objectives; feasible
    samples (within the hard limits) are preferred.  Uniform samples crowd in
    the middle of the cost range; a first generation spread over it puts the
    small, cheap networks (where accuracy starts to trade against cost) on the
    map from the start.
    """
    space, hardware = problem.space, problem.hardware
    X = space.canonical_encoding(np.stack([space.encode(space.sample(rng)) for _ in range(oversample * n)]))
    X = np.unique(X, axis=0)
    values = hardware.evaluate(X)
    feasible = hardware.feasible(values)
    if feasible.sum() >= n:
        X = X[feasible]
        values = {k: v[feasible] for k, v in values.items()}
    ranks = np.mean([np.argsort(np.argsort(v)) for v in values.values()], axis=0)
    order = np.argsort(ranks, kind="stable")
    picks = order[np.round(np.linspace(0, len(order) - 1, n)).astype(int)]
    return X[picks]


class Strategy(ABC):
    """Base class; see the module docstring.  Subclasses implement ``_setup``, ``_ask`` and ``_tell``.

    The base keeps :attr:`seen` (every architecture asked for: ``_ask`` should propose only unseen ones, and
    within one batch each once), the empty-batch fallback, and :attr:`notes`."""

    name: str = ""
    #: Whether the strategy keeps the steady-state contract (see the module docstring).
    steady_state: bool = False

    def setup(self, problem: SearchProblem, seed: int) -> None:
        self.problem = problem
        self.rng = np.random.default_rng(seed)
        self.asked = 0
        self.wanted: int | None = None  # candidates the current ask is for (None: a whole batch)
        self.notes: list[str] = []  # what the user should know about how the strategy runs on this problem
        self.seen: set[str] = set()  # every architecture asked for so far (strategies never propose one twice)
        self._setup(problem, seed)

    def ask(self, n: int | None = None) -> list[Candidate]:
        """The next batch of candidates (about ``n`` where given: steady-state mode asks for the free workers),
        recorded in :attr:`seen` (never empty: a strategy with nothing new to propose gets one random architecture,
        which the search loop recognises as nothing new and counts towards its stop)."""
        self.wanted = n
        candidates = self._ask()
        if not candidates:
            candidates = [Candidate(self.problem.space.sample(self.rng))]
        self.seen.update(str(c.arch) for c in candidates)
        self.asked += len(candidates)
        return candidates

    def can_ask(self) -> bool:
        """Whether :meth:`ask` can propose before more of the outstanding candidates are told (steady-state mode)."""
        return True

    def tell(self, candidates: Sequence[Candidate], evaluations: Sequence[Evaluation]) -> None:
        """Evaluations of the candidates of the last :meth:`ask`, in the same order (in steady-state mode: of any
        outstanding candidates, as they finish)."""
        if len(candidates) != len(evaluations):
            raise ValueError("tell needs one evaluation per candidate")
        self._tell(list(candidates), list(evaluations))

    def _setup(self, problem: SearchProblem, seed: int) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def _ask(self) -> list[Candidate]: ...

    @abstractmethod
    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None: ...
