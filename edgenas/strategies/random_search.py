"""Random search: uniformly random feasible architectures, never the same one twice (the floor to beat)."""

from __future__ import annotations

import numpy as np

from edgenas.archive import Evaluation
from edgenas.strategies.base import Candidate, Strategy


class RandomSearch(Strategy):
    name = "random"

    def _setup(self, problem, seed) -> None:
        self.seen: set[str] = set()

    def _ask(self) -> list[Candidate]:
        space, hardware = self.problem.space, self.problem.hardware
        out: list[Candidate] = []
        for _ in range(200):
            archs = [space.sample(self.rng) for _ in range(4 * self.problem.batch_size)]
            feasible = hardware.feasible(hardware.evaluate(np.stack([space.encode(a) for a in archs])))
            for arch, ok in zip(archs, feasible):
                key = str(arch)
                if key in self.seen or not ok:
                    continue
                self.seen.add(key)
                out.append(Candidate(arch))
                if len(out) == self.problem.batch_size:
                    return out
        if not out:  # the constraints reject (almost) everything: let the loop record why
            out.append(Candidate(space.sample(self.rng)))
        return out

    def _tell(self, candidates: list[Candidate], evaluations: list[Evaluation]) -> None:
        pass
