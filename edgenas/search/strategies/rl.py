"""A reinforcement-learning controller with penalized rewards (Neural Architect / MnasNet style).

The controller is a per-decision categorical policy in torch: one vector of
logits per free gene of the space (resolution, width, each stage's depth, each
block's kernel and expansion).  It samples architectures, and REINFORCE with a
moving-average baseline and an entropy bonus moves it towards high reward:

    loss = -(R - b) * sum_i log pi(a_i) - entropy_weight * sum_i H(pi_i)
    b    <- baseline_decay * b + (1 - baseline_decay) * R

Two rewards, with accuracy ``A`` in [0, 1]:

- ``penalty`` (Neural Architect): ``R = A - sum_c lambda * max(0, cost_c / target_c - 1)``
  over the hardware objectives of the search (latency, energy, memory, size);
  a network within every target is rewarded for its accuracy alone.
- ``mnasnet`` (MnasNet): ``R = A * (latency / T) ** w`` with ``w = alpha`` if
  ``latency <= T`` else ``beta`` (defaults ``alpha = beta = -0.07``).

A scalar reward finds one point of the front.  To cover the front, the
strategy keeps one controller per *target level* and spreads each batch over
the levels.  The levels are five cost quantiles (10%, 30%, 50%, 70%, 90%) of
random feasible architectures, or, where the user gives a target, that target
times 0.5, 0.71, 1, 1.41 and 2.  Every evaluation goes to the one archive and
front, as with every strategy.  Candidates are feasible (within the hard
limits) and never asked twice; failed training counts as ``A = 0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgenas.errors import SearchError
from edgenas.search.archive import Evaluation, Status
from edgenas.search.objectives import Objective
from edgenas.search.strategies.base import Candidate, SearchProblem, Strategy, StrategySettings

__all__ = ["Controller", "RLStrategy", "mnasnet_reward", "penalty_reward"]

LEVEL_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
LEVEL_FACTORS = (0.5, 2**-0.5, 1.0, 2**0.5, 2.0)


def penalty_reward(accuracy: float, costs: Mapping[str, float], targets: Mapping[str, float],
                   weight: float = 0.5) -> float:
    """``accuracy - sum over targeted costs of weight * max(0, cost / target - 1)``."""
    return accuracy - sum(weight * max(0.0, costs[name] / target - 1.0) for name, target in targets.items())


def mnasnet_reward(accuracy: float, latency_ms: float, target_ms: float, alpha: float = -0.07,
                   beta: float = -0.07) -> float:
    """``accuracy * (latency / target) ** w``, ``w = alpha`` within the target, ``beta`` beyond it."""
    w = alpha if latency_ms <= target_ms else beta
    return accuracy * (latency_ms / target_ms) ** w


@dataclass(frozen=True)
class RLSettings:
    """The RL strategy's knobs (from :class:`StrategySettings`)."""

    reward: str = "penalty"
    targets: tuple[tuple[str, float], ...] = ()  # (objective name, target) given by the user
    penalty_weight: float = 0.5
    alpha: float = -0.07
    beta: float = -0.07
    entropy_weight: float = 0.01
    learning_rate: float = 0.1
    baseline_decay: float = 0.8


class Controller:
    """A per-decision categorical policy over the free genes, trained with REINFORCE."""

    def __init__(self, choices: list[int], settings: RLSettings) -> None:
        import torch

        self.logits = [torch.zeros(n, requires_grad=True) for n in choices]
        self.optimizer = torch.optim.Adam(self.logits, lr=settings.learning_rate)
        self.settings = settings
        self.baseline: float | None = None

    def probabilities(self) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            return [torch.softmax(logits, 0).double().numpy() for logits in self.logits]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.choice(len(p), p=p / p.sum()) for p in self.probabilities()], dtype=np.int64)

    def update(self, actions: list[np.ndarray], rewards: list[float]) -> None:
        """One REINFORCE step on a batch of (action vector, reward)."""
        import torch

        if not actions:
            return
        loss = torch.zeros(())
        for x, reward in zip(actions, rewards):
            if self.baseline is None:
                self.baseline = reward
            advantage = reward - self.baseline
            for logits, a in zip(self.logits, x):
                loss = loss - advantage * torch.log_softmax(logits, 0)[int(a)]
            self.baseline = self.settings.baseline_decay * self.baseline + (1 - self.settings.baseline_decay) * reward
        loss = loss / len(actions)
        for logits in self.logits:
            p = torch.softmax(logits, 0)
            loss = loss + self.settings.entropy_weight * torch.sum(p * torch.log(p))  # minus the entropy
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


class RLStrategy(Strategy):
    """See the module docstring."""

    name = "rl"
    steady_state = True  # each result updates the controller of its level as it arrives

    def __init__(self, settings: StrategySettings | None = None) -> None:
        settings = settings or StrategySettings()
        self.population = settings.population
        self.rl = RLSettings(settings.reward, tuple(settings.targets), settings.penalty_weight,
                             settings.mnasnet_alpha, settings.mnasnet_beta, settings.entropy_weight)
        if self.rl.reward not in ("penalty", "mnasnet"):
            raise SearchError(f"unknown reward '{self.rl.reward}'; choose penalty or mnasnet")

    def _setup(self, problem: SearchProblem, seed: int) -> None:
        import torch

        torch.manual_seed(seed)
        self.batch = self.population or problem.batch_size
        hardware = problem.hardware
        costs = [o for o in problem.objectives if o is not Objective.ERROR and o in hardware.available]
        if self.rl.reward == "mnasnet":
            if Objective.LATENCY not in hardware.available:
                raise SearchError("the mnasnet reward needs latency: give the search a latency table")
            costs = [Objective.LATENCY]
        given = dict(self.rl.targets)
        unknown = [name for name in given if name not in {o.value for o in costs}]
        if unknown:
            raise SearchError(f"target(s) for {', '.join(unknown)} but the reward uses "
                              f"{', '.join(o.value for o in costs) or 'no hardware objective'}; "
                              "targets must be among the search's objectives")
        self.costs = costs
        self.levels = self._levels(problem, costs, given)
        choices = [len(g.choices) for g in problem.space.free_genes]
        self.controllers = [Controller(choices, self.rl) for _ in self.levels]
        self.pending: dict[str, tuple[int, np.ndarray]] = {}

    def _levels(self, problem: SearchProblem, costs, given: dict[str, float]) -> list[dict[str, float]]:
        """Per level, the target of each cost objective (see the module docstring)."""
        space, hardware = problem.space, problem.hardware
        X = np.stack([space.encode(space.sample(self.rng)) for _ in range(2000)])
        values = hardware.evaluate(X)
        feasible = hardware.feasible(values)
        if feasible.sum() >= 10:
            values = {k: v[feasible] for k, v in values.items()}
        levels = []
        for q, factor in zip(LEVEL_QUANTILES, LEVEL_FACTORS):
            levels.append({o.value: float(given[o.value] * factor if o.value in given
                                          else np.quantile(values[o], q)) for o in costs})
        return levels

    def reward(self, evaluation: Evaluation, level: int) -> float:
        accuracy = evaluation.accuracy if evaluation.status == Status.OK and evaluation.accuracy is not None else 0.0
        targets = self.levels[level]
        if self.rl.reward == "mnasnet":
            return mnasnet_reward(accuracy, evaluation.objectives["latency"], targets["latency"], self.rl.alpha,
                                  self.rl.beta)
        return penalty_reward(accuracy, evaluation.objectives, targets, self.rl.penalty_weight)

    def _ask(self) -> list[Candidate]:
        space, hardware = self.problem.space, self.problem.hardware
        out: list[Candidate] = []
        for i in range(self.wanted or self.batch):
            level = (self.asked + i) % len(self.levels)
            controller = self.controllers[level]
            chosen = None
            for attempt in range(60):  # the policy's sample, or (when it keeps repeating itself) a random one
                x = controller.sample(self.rng) if attempt < 30 else space.encode(space.sample(self.rng))
                arch = space.decode(x)
                key = str(arch)
                if key in self.seen:
                    continue
                if not hardware.feasible(hardware.evaluate(space.encode(arch)[None]))[0] and attempt < 59:
                    continue
                chosen = (arch, x)
                break
            if chosen is None:
                continue
            arch, x = chosen
            self.seen.add(str(arch))
            self.pending[str(arch)] = (level, x)
            out.append(Candidate(arch))
        return out  # empty when the space is exhausted: the base asks a random one, the loop says why

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        batches: dict[int, tuple[list, list]] = {}
        for cand, ev in zip(candidates, evaluations):
            if str(cand.arch) not in self.pending:
                continue
            level, x = self.pending.pop(str(cand.arch))
            actions, rewards = batches.setdefault(level, ([], []))
            actions.append(x)
            rewards.append(self.reward(ev, level))
        for level, (actions, rewards) in sorted(batches.items()):
            self.controllers[level].update(actions, rewards)
