"""Random search: uniformly random feasible architectures, never the same one twice (the floor to beat)."""

from __future__ import annotations

from edgenas.search.archive import Evaluation
from edgenas.search.strategies.base import Candidate, Strategy


class RandomSearch(Strategy):
    name = "random"
    steady_state = True

    def _ask(self) -> list[Candidate]:
        batch = self.wanted or self.problem.batch_size
        archs = self.problem.sample_feasible(self.rng, batch, self.seen, draw=4 * batch, rounds=200)
        return [Candidate(a) for a in archs[:batch]]  # none: the limits reject (almost) everything; the loop says why

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        pass
