"""Search strategies behind one ask/tell contract (see :mod:`edgenas.search.strategies.base`).

``list_strategies()`` names them; ``get_strategy(name)`` makes one; ``register_strategy(name, description,
factory)`` adds one from outside the package (then ``edgenas search --strategy NAME`` runs it, and
``edgenas.search.testing.StrategyContract`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgenas.errors import SearchError
from edgenas.search.strategies.base import Candidate, SearchProblem, Strategy, StrategySettings

__all__ = [
    "Candidate", "SearchProblem", "Strategy", "StrategyInfo", "StrategySettings", "get_strategy", "list_strategies",
    "register_strategy",
]


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    description: str
    factory: Callable[..., Strategy]


def _lemonade(settings: StrategySettings) -> Strategy:
    from edgenas.search.strategies.lemonade import Lemonade

    return Lemonade(settings)


def _nsga2(settings: StrategySettings) -> Strategy:
    from edgenas.search.strategies.nsga2 import NSGA2Strategy

    return NSGA2Strategy(settings.population)


def _rl(settings: StrategySettings) -> Strategy:
    from edgenas.search.strategies.rl import RLStrategy

    return RLStrategy(settings)


def _local(settings: StrategySettings) -> Strategy:
    from edgenas.search.strategies.local import PredictorLocalSearch

    return PredictorLocalSearch(settings)


def _random(settings: StrategySettings) -> Strategy:
    from edgenas.search.strategies.random_search import RandomSearch

    return RandomSearch()


_REGISTRY = {
    info.name: info
    for info in (
        StrategyInfo("lemonade", "LEMONADE: Lamarckian evolution by network morphisms, inherited weights, "
                     "KDE-based sampling over cheap objectives", _lemonade),
        StrategyInfo("nsga2", "NSGA-II (pymoo) on the integer-encoded genome: the baseline", _nsga2),
        StrategyInfo("rl", "a REINFORCE controller with a penalized (Neural Architect) or MnasNet reward, targets "
                     "varied to cover the front", _rl),
        StrategyInfo("local", "predictor-guided Pareto local search: neighbours of the front ranked by an ensemble "
                     "accuracy predictor with Thompson sampling (BANANAS-style)", _local),
        StrategyInfo("random", "uniformly random feasible architectures: the floor every strategy must beat", _random),
    )
}


def register_strategy(name: str, description: str, factory: Callable[[StrategySettings], Strategy], *,
                      replace: bool = False) -> StrategyInfo:
    """Make a strategy available by name: ``factory(settings)`` returns a new :class:`Strategy`.  A name already
    registered is refused unless ``replace``."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"strategy name {name!r} must be letters, digits, '-' or '_'")
    if name in _REGISTRY and not replace:
        raise ValueError(f"strategy {name!r} is registered already (pass replace=True to replace it)")
    info = StrategyInfo(name, description, factory)
    _REGISTRY[name] = info
    return info


def list_strategies() -> list[StrategyInfo]:
    return list(_REGISTRY.values())


def get_strategy(name: str, settings: StrategySettings | None = None) -> Strategy:
    if name not in _REGISTRY:
        raise SearchError(f"unknown strategy '{name}'; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name].factory(settings or StrategySettings())
