import numpy as np
import pytest

from edgenas.errors import SearchError
from edgenas.search.objectives import Objective
from edgenas.search.strategies import (
    Candidate,
    Strategy,
    StrategySettings,
    get_strategy,
    list_strategies,
    register_strategy,
)
from edgenas.search.testing import StrategyContract, contract_problem, synthetic_evaluations


class TestLemonade(StrategyContract):
    strategy_name = "lemonade"


class TestRL(StrategyContract):
    strategy_name = "rl"


class TestNSGA2(StrategyContract):
    strategy_name = "nsga2"


class TestRandomSearch(StrategyContract):
    strategy_name = "random"


class TestPredictorLocalSearch(StrategyContract):
    strategy_name = "local"


class FirstFeasible(Strategy):
    """A strategy from outside the package: the first feasible unseen samples (uses only the public API)."""

    name = "outside-first-feasible"

    def _ask(self):
        batch = self.problem.batch_size
        return [Candidate(a) for a in self.problem.sample_feasible(self.rng, batch, self.seen)[:batch]]

    def _tell(self, candidates, evaluations):
        pass


register_strategy("outside-first-feasible", "test strategy registered from outside", lambda settings: FirstFeasible())


class TestAnOutsideStrategy(StrategyContract):
    strategy_name = "outside-first-feasible"


def test_register_strategy_refuses_a_taken_or_bad_name():
    with pytest.raises(ValueError, match="registered already"):
        register_strategy("lemonade", "again", lambda settings: FirstFeasible())
    with pytest.raises(ValueError, match="must be letters"):
        register_strategy("no spaces", "bad", lambda settings: FirstFeasible())
    assert "outside-first-feasible" in {s.name for s in list_strategies()}


def test_sample_feasible_keeps_limits_exclusions_and_its_bound():
    from edgenas.search.objectives import Constraints
    from edgenas.search.testing import contract_problem

    open_problem = contract_problem()
    rng = np.random.default_rng(0)
    sizes = open_problem.hardware.evaluate(np.stack([open_problem.space.encode(open_problem.space.sample(rng))
                                                     for _ in range(200)]))[Objective.SIZE]
    limit = float(np.quantile(sizes, 0.3))
    problem = contract_problem(Constraints(max_size_kb=limit))
    first = problem.sample_feasible(np.random.default_rng(1), 5, draw=40)
    assert len(first) >= 5 and len({str(a) for a in first}) == len(first)
    X = np.stack([problem.space.encode(a) for a in first])
    assert problem.hardware.feasible(problem.hardware.evaluate(X)).all()
    again = problem.sample_feasible(np.random.default_rng(1), 5, {str(a) for a in first[:3]}, draw=40)
    assert not {str(a) for a in first[:3]} & {str(a) for a in again}
    impossible = contract_problem(Constraints(max_size_kb=1e-9))
    assert impossible.sample_feasible(np.random.default_rng(2), 5, rounds=3) == []  # bounded: ends empty


def test_ask_records_what_was_asked_in_seen():
    from edgenas.search.testing import contract_problem, synthetic_evaluations

    problem = contract_problem()
    for name in ("lemonade", "rl", "nsga2", "random", "local"):
        strategy = get_strategy(name, StrategySettings(population=problem.batch_size))
        strategy.setup(problem, 0)
        asked = set()
        for _ in range(3):
            candidates = strategy.ask()
            asked |= {str(c.arch) for c in candidates}
            strategy.tell(candidates, synthetic_evaluations(problem, candidates))
        assert strategy.seen == asked, name


def test_registry_lists_and_rejects():
    assert {s.name for s in list_strategies()} >= {"nsga2", "random"}
    with pytest.raises(SearchError, match="unknown strategy 'cmaes'; choose from lemonade, nsga2, rl, local, random"):
        get_strategy("cmaes")


# ------------------------------------------------------------------ LEMONADE
def lemonade_run(generations=4, seed=0, finetune_epochs=2):
    from edgenas.search.strategies import StrategySettings
    from edgenas.search.testing import contract_problem, synthetic_evaluations

    problem = contract_problem()
    strategy = get_strategy("lemonade", StrategySettings(population=problem.batch_size, finetune_epochs=finetune_epochs))
    strategy.setup(problem, seed)
    batches = []
    for _ in range(generations):
        candidates = strategy.ask()
        batches.append(candidates)
        strategy.tell(candidates, synthetic_evaluations(problem, candidates))
    return problem, strategy, batches


def test_lemonade_children_are_morphisms_of_front_members():
    from edgenas.space.morphisms import morphisms

    problem, strategy, batches = lemonade_run(generations=5, finetune_epochs=3)
    assert all(c.parent is None and c.epochs is None for c in batches[0])  # trained from scratch
    space = problem.space
    children = [c for batch in batches[1:] for c in batch]
    assert len(children) >= 3 * problem.batch_size
    for child in children:
        assert child.parent is not None and child.epochs == 3
        assert child.arch in {m.child for m in morphisms(space, space.parse(child.parent))}
    assert len({str(c.arch) for batch in batches for c in batch}) == sum(len(b) for b in batches)  # never twice


def test_lemonade_population_is_the_non_dominated_set():
    problem, strategy, _ = lemonade_run(generations=3)
    front = strategy.front()
    F = np.array([[e.objectives[o.value] for o in problem.objectives] for e in strategy.evaluations])
    for e in front:
        f = np.array([e.objectives[o.value] for o in problem.objectives])
        assert not np.any(np.all(F <= f, axis=1) & np.any(F < f, axis=1))
    assert len(front) >= 1
    in_front = {e.arch for e in front}
    for e in strategy.evaluations:  # everything left out is dominated by a member
        if e.arch not in in_front:
            f = np.array([e.objectives[o.value] for o in problem.objectives])
            G = np.array([[m.objectives[o.value] for o in problem.objectives] for m in front])
            assert np.any(np.all(G <= f, axis=1) & np.any(G < f, axis=1))


def test_inverse_density_probabilities_favour_sparse_regions():
    from edgenas.search.strategies.lemonade import inverse_density_probabilities

    rng = np.random.default_rng(0)
    cluster = np.exp(rng.normal(0, 0.05, size=(20, 2)))
    points = np.vstack([cluster, [[8.0, 8.0]]])
    p = inverse_density_probabilities(points, points)
    assert p.sum() == pytest.approx(1.0)
    assert p[-1] > 5 * p[:-1].max()  # the lone point is far more likely
    q = inverse_density_probabilities(points, np.array([[1.0, 1.0], [3.0, 3.0]]))
    assert q[1] > q[0]


def test_inverse_density_probabilities_in_degenerate_cases():
    from edgenas.search.strategies.lemonade import inverse_density_probabilities

    line = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [4.0, 8.0, 12.0]])  # collinear in log space: rank 1
    p = inverse_density_probabilities(line, line)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    assert p[1] < p[0] and p[1] < p[2]  # the middle point is the densest
    one = inverse_density_probabilities(line[:1], line)
    assert np.allclose(one, 1 / 3)
    same = inverse_density_probabilities(np.ones((4, 3)), line)
    assert np.allclose(same, 1 / 3)


# ------------------------------------------------------------------------ RL
def test_reward_formulas():
    from edgenas.search.strategies.rl import mnasnet_reward, penalty_reward

    assert penalty_reward(0.9, {"latency": 0.5, "size": 100.0}, {"latency": 1.0, "size": 200.0}) == pytest.approx(0.9)
    assert penalty_reward(0.9, {"latency": 2.0, "size": 300.0}, {"latency": 1.0, "size": 200.0}, weight=0.5) == \
        pytest.approx(0.9 - 0.5 * 1.0 - 0.5 * 0.5)
    assert mnasnet_reward(0.8, 2.0, 1.0) == pytest.approx(0.8 * 2 ** -0.07)
    assert mnasnet_reward(0.8, 0.5, 1.0) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert mnasnet_reward(0.8, 0.5, 1.0, alpha=0.0, beta=-1.0) == pytest.approx(0.8)  # hard limit style
    assert mnasnet_reward(0.8, 2.0, 1.0, alpha=0.0, beta=-1.0) == pytest.approx(0.4)


def test_the_controller_learns_a_bandit():
    from edgenas.search.strategies.rl import Controller, RLSettings

    controller = Controller([3, 4], RLSettings())
    rng = np.random.default_rng(0)
    before = controller.probabilities()[1][2]
    for _ in range(40):
        actions = [controller.sample(rng) for _ in range(8)]
        controller.update(actions, [1.0 if a[1] == 2 else 0.0 for a in actions])
    assert before == pytest.approx(0.25) and controller.probabilities()[1][2] > 0.8


def rl_strategy(problem, **kw):
    from edgenas.search.strategies import StrategySettings

    strategy = get_strategy("rl", StrategySettings(population=problem.batch_size, **kw))
    strategy.setup(problem, 0)
    return strategy


def test_rl_targets_spread_over_levels_and_cover_the_cost_range():
    from edgenas.search.objectives import Objective
    from edgenas.search.testing import contract_problem, synthetic_evaluations

    problem = contract_problem(batch_size=10)
    strategy = rl_strategy(problem)
    sizes = [level["size"] for level in strategy.levels]
    assert sizes == sorted(sizes) and sizes[-1] > 1.5 * sizes[0]
    given = rl_strategy(problem, targets=(("size", 20.0),))
    assert [level["size"] for level in given.levels] == pytest.approx([10.0, 20 / 2**0.5, 20.0, 20 * 2**0.5, 40.0])
    asked = []
    for _ in range(6):
        candidates = strategy.ask()
        asked += candidates
        strategy.tell(candidates, synthetic_evaluations(problem, candidates))
    X = np.stack([problem.space.encode(c.arch) for c in asked[-20:]])
    late = problem.hardware.evaluate(X)[Objective.SIZE]
    assert late.max() > 2 * late.min()  # the late batches still span the front, not one point


def test_rl_bad_settings():
    from edgenas.search.testing import contract_problem

    problem = contract_problem()
    with pytest.raises(SearchError, match="mnasnet reward needs latency"):
        rl_strategy(problem, reward="mnasnet")
    with pytest.raises(SearchError, match="target\\(s\\) for latency"):
        rl_strategy(problem, targets=(("latency", 1.0),))
    with pytest.raises(SearchError, match="unknown reward 'accuracy'"):
        rl_strategy(problem, reward="accuracy")


def _degenerate_populations():
    rng = np.random.default_rng(0)
    line = np.exp(np.linspace(0, 3, 12))[:, None] * np.array([[1.0, 2.0, 3.0]])
    yield "identical", np.ones((6, 3))
    yield "one point", np.array([[1.0, 2.0, 3.0]])
    yield "collinear", line
    yield "huge density ratios", np.vstack([np.full((40, 3), 1.0) + 1e-9 * rng.random((40, 3)), [[1e6, 1e6, 1e6]]])
    for seed in range(40):
        r = np.random.default_rng(seed)
        yield f"random {seed}", np.exp(r.normal(0, r.uniform(0.01, 5), (int(r.integers(2, 30)), 3)))


@pytest.mark.parametrize("name, points", list(_degenerate_populations()))
def test_inverse_density_sampling_cannot_fail(name, points):
    """Every query keeps weight, so drawing a whole batch without replacement never fails (seed 8 once did)."""
    from edgenas.search.strategies.lemonade import WEIGHT_FLOOR, inverse_density_probabilities

    rng = np.random.default_rng(len(points))
    for queries in (points, np.vstack([points, points * rng.uniform(0.5, 2, points.shape)]), points[:1]):
        p = inverse_density_probabilities(points, queries)
        assert p.shape == (len(queries),) and np.isfinite(p).all()
        assert p.sum() == pytest.approx(1.0) and p.min() >= WEIGHT_FLOOR * p.max() * 0.999
        drawn = rng.choice(len(queries), size=len(queries), replace=False, p=p)
        assert sorted(drawn) == list(range(len(queries)))


@pytest.mark.parametrize("seed", range(12))
def test_lemonade_runs_on_any_seed(seed):
    _, strategy, batches = lemonade_run(generations=6, seed=seed)
    assert all(batches) and len({str(c.arch) for b in batches for c in b}) == sum(len(b) for b in batches)


def test_nsga2_told_one_architecture_twice_takes_it_once():
    """Steady-state mode tells a candidate asked again while it was being evaluated together with the first."""
    problem = contract_problem()
    strategy = get_strategy("nsga2", StrategySettings(population=problem.batch_size))
    strategy.setup(problem, 0)
    first = strategy.ask()
    strategy.tell(first, synthetic_evaluations(problem, first))
    second = strategy.ask()
    evaluations = synthetic_evaluations(problem, second)
    strategy.tell([second[0], second[0]], [evaluations[0], evaluations[0]])
    strategy.tell(second[1:], evaluations[1:])
    assert strategy.ask()  # the search goes on
