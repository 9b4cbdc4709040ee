import pytest

from edgenas.errors import SearchError
from edgenas.strategies import get_strategy, list_strategies
from edgenas.testing import StrategyContract


class TestNSGA2(StrategyContract):
    strategy_name = "nsga2"


class TestRandomSearch(StrategyContract):
    strategy_name = "random"


def test_registry_lists_and_rejects():
    assert {s.name for s in list_strategies()} >= {"nsga2", "random"}
    with pytest.raises(SearchError, match="unknown strategy 'cmaes'; choose from nsga2, random"):
        get_strategy("cmaes")
