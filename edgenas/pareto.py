"""The Pareto front of evaluations: pure functions over archive records (pymoo's non-dominated sorting)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgenas.archive import Evaluation
from edgenas.objectives import Objective

__all__ = ["non_dominated", "pareto_front"]


def non_dominated(evaluations: Sequence[Evaluation], objectives: Sequence[Objective]) -> list[Evaluation]:
    """The non-dominated evaluations among the feasible, successfully trained ones, in pymoo's order."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    pool = [e for e in evaluations if e.status == "ok" and all(v <= 0 for v in e.violations)]
    if not pool:
        return []
    F = np.array([[e.objectives[o.value] for o in objectives] for e in pool], dtype=float)
    return [pool[i] for i in NonDominatedSorting().do(F, only_non_dominated_front=True)]


def pareto_front(evaluations: Sequence[Evaluation], objectives: Sequence[Objective]) -> list[Evaluation]:
    """:func:`non_dominated`, sorted by the first objective (the front as reports show it)."""
    return sorted(non_dominated(evaluations, objectives), key=lambda e: e.objectives[objectives[0].value])
