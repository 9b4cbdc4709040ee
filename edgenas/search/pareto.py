"""The Pareto front of evaluations: pure functions over archive records (pymoo's non-dominated sorting)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgenas.search.archive import Evaluation, Status
from edgenas.search.objectives import Objective

__all__ = ["hypervolume", "non_dominated", "pareto_front"]


def non_dominated(evaluations: Sequence[Evaluation], objectives: Sequence[Objective]) -> list[Evaluation]:
    """The non-dominated evaluations among the feasible, successfully trained ones, in pymoo's order."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    pool = [e for e in evaluations if e.status == Status.OK and all(v <= 0 for v in e.violations)]
    if not pool:
        return []
    F = np.array([[e.objectives[o.value] for o in objectives] for e in pool], dtype=float)
    return [pool[i] for i in NonDominatedSorting().do(F, only_non_dominated_front=True)]


def pareto_front(evaluations: Sequence[Evaluation], objectives: Sequence[Objective]) -> list[Evaluation]:
    """:func:`non_dominated`, sorted by the first objective (the front as reports show it)."""
    return sorted(non_dominated(evaluations, objectives), key=lambda e: e.objectives[objectives[0].value])


def hypervolume(front: Sequence[Evaluation], objectives: Sequence[Objective], reference: Sequence[float]) -> float:
    """pymoo's hypervolume of the front against the run's fixed reference point."""
    from pymoo.indicators.hv import HV

    if not front:
        return 0.0
    F = np.array([[e.objectives[o.value] for o in objectives] for e in front])
    F = F[np.all(F < np.asarray(reference), axis=1)]
    return float(HV(ref_point=np.asarray(reference, dtype=float))(F)) if len(F) else 0.0
