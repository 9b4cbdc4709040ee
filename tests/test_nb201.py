"""The NAS-Bench-201 cell space and the tabular benchmark: strings, lookups, files, searches, the CLI.

Checks use independent computations: the data file read with the standard library, dominance checked pairwise,
the hypervolume gain against pymoo's indicator.
"""

import csv
import gzip
import json
import sqlite3

import numpy as np
import pytest

from edgenas.cli import main
from edgenas.errors import ArchitectureError, SearchError
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search
from edgenas.space.mbconv import get_space
from edgenas.space.nb201 import EDGES, OPS, Cell, CellSpace, TabularData, default_data_path, load_problem, path_features
from edgenas.space.protocol import Space

STRATEGIES = ("lemonade", "nsga2", "rl", "local", "random")


@pytest.fixture(scope="module")
def raw():
    with gzip.open(default_data_path(), "rt", encoding="utf-8") as f:
        return json.load(f)


def write(path, data, compress=True):
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            json.dump(data, f)
    else:
        path.write_text(json.dumps(data))
    return path


# ----------------------------------------------------------------- the space
def test_every_cell_string_of_the_data_round_trips(raw):
    space = CellSpace()
    cells = [Cell.parse(a) for a in raw["archs"]]
    assert [str(c) for c in cells] == raw["archs"]
    X = np.stack([space.encode(c) for c in cells])
    assert len(np.unique(space.codes(X))) == 15625
    assert all(space.decode(x) == c for x, c in zip(X[:200], cells[:200]))
    # the genome reads the string's edges in order: node 1 (from 0), node 2 (from 0, 1), node 3 (from 0, 1, 2)
    first = [e for e in raw["archs"][0].replace("+", "|").split("|") if e]
    assert [OPS[o] for o in cells[0].ops] == [e.split("~")[0] for e in first]
    assert [int(e.split("~")[1]) for e in first] == [src for _, src in EDGES]


@pytest.mark.parametrize("text", [
    "", "|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|+|none~0|none~1|none~2|",
])
def test_bad_cell_strings_are_refused(text):
    with pytest.raises(ArchitectureError, match="cannot parse cell"):
        Cell.parse(text)


def test_both_spaces_keep_the_protocol():
    assert isinstance(CellSpace(), Space) and isinstance(get_space("small"), Space)
    assert CellSpace().supports_morphisms is False and get_space("small").supports_morphisms is True


def test_neighbours_differ_on_exactly_one_edge():
    space = CellSpace()
    cell = space.sample(np.random.default_rng(0))
    neighbours = space.neighbors(cell)
    assert len(set(neighbours)) == 24 and cell not in neighbours
    assert all(sum(a != b for a, b in zip(n.ops, cell.ops)) == 1 for n in neighbours)


def test_path_features_by_hand():
    none = path_features(np.zeros((1, 6), dtype=int))[0]
    assert none[:30].reshape(6, 5)[:, 0].all() and none[30:35].tolist() == [6, 0, 0, 0, 0]
    assert none[35:].sum() == 0  # every path is cut by 'none'
    conv = path_features(np.full((1, 6), 3))[0]
    # paths: length 1 (5 codes), 2 (25), 2 (25), 3 (125); each carries conv3x3 only
    assert conv[35 + 3] == 1 and conv[40 + 3 * 5 + 3] == 1 and conv[65 + 3 * 5 + 3] == 1
    assert conv[90 + 3 * 25 + 3 * 5 + 3] == 1 and conv[35:].sum() == 4


# ------------------------------------------------------------------ the data
def test_lookups_match_the_file_read_with_the_standard_library(raw):
    problem = load_problem("nb201:cifar100:fpga")
    space = CellSpace()
    rows = np.random.default_rng(1).integers(0, 15625, 300)
    X = np.stack([space.encode(Cell.parse(raw["archs"][i])) for i in rows])
    assert np.allclose(problem.error_pct(X), [100 - raw["accuracy"]["cifar100"][i] for i in rows])
    assert np.allclose(problem.latency_ms(X), [raw["latency_ms"]["fpga"][i] for i in rows])


def test_a_shuffled_file_and_a_latency_only_device_file_give_the_same_lookups(raw, tmp_path):
    order = np.random.default_rng(2).permutation(15625)
    shuffled = {"archs": [raw["archs"][i] for i in order],
                "accuracy": {"cifar10": [raw["accuracy"]["cifar10"][i] for i in order]},
                "latency_ms": {"mydev": [raw["latency_ms"]["raspi4"][i] * 2 for i in order]}}
    device_only = {"latency_ms": {"mydev": [v * 2 for v in raw["latency_ms"]["raspi4"]]}}  # shipped index order
    space = CellSpace()
    X = np.stack([space.encode(space.sample(np.random.default_rng(3))) for _ in range(100)])
    base = load_problem("nb201:cifar10:raspi4")
    for data in (write(tmp_path / "shuffled.json.gz", shuffled), write(tmp_path / "device.json", device_only, False)):
        problem = load_problem("nb201:cifar10:mydev", data)
        assert np.allclose(problem.latency_ms(X), 2 * base.latency_ms(X))
        assert np.allclose(problem.error_pct(X), base.error_pct(X))


@pytest.mark.parametrize("content, message", [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "not an object"),
    (json.dumps({"latency_ms": {"d": [1.0] * 10}}).encode(), "must be a list of 15625 numbers"),
    (json.dumps({"latency_ms": {}}).encode(), "'latency_ms' must map device names"),
    (json.dumps({"latency_ms": {"d": [1.0] * 15624 + [float("nan")]}}).encode().replace(b"NaN", b"NaN"),
     "value 15624 is nan"),
    (json.dumps({"latency_ms": {"d": [1.0] * 15624 + [-1.0]}}).encode(), "finite and not negative"),
    (json.dumps({"archs": ["x"] * 15625, "accuracy": {}, "latency_ms": {}}).encode(), "distinct NAS-Bench-201"),
])
def test_bad_benchmark_files_are_refused_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SearchError, match=message):
        TabularData.load(path)


@pytest.mark.parametrize("spec, message", [
    ("nb201:cifar100", "must be nb201:DATASET:DEVICE"),
    ("nb101:cifar10:pixel3", "must be nb201:DATASET:DEVICE"),
    ("nb201:mnist:pixel3", "unknown dataset 'mnist'.*cifar10, cifar100"),
    ("nb201:cifar10:iphone", "unknown device 'iphone'.*pixel3"),
])
def test_bad_problem_names_list_the_valid_ones(spec, message):
    with pytest.raises(SearchError, match=message):
        load_problem(spec)


# ------------------------------------------------------------------ searches
def front_rows(run_dir):
    with open(run_dir / "front.csv", newline="") as f:
        return list(csv.DictReader(f))


def evaluated(run_dir):
    with sqlite3.connect(run_dir / "archive.sqlite") as db:
        return [r[0] for r in db.execute("SELECT arch FROM evaluations ORDER BY id")]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_searches_the_tabular_benchmark(strategy, raw, tmp_path):
    run_dir = tmp_path / strategy
    result = run_search(SearchConfig(problem="nb201:cifar10:pixel3", strategy=strategy, budget=48, seed=1,
                                     run_dir=str(run_dir)), progress=False, log=lambda m: None)
    assert result.evaluations == result.trained == 48
    archs = evaluated(run_dir)
    assert len(set(archs)) == 48
    row = {a: i for i, a in enumerate(raw["archs"])}
    points = {a: (100 - raw["accuracy"]["cifar10"][row[a]], raw["latency_ms"]["pixel3"][row[a]]) for a in archs}
    front = front_rows(run_dir)
    assert front and {"arch", "error_pct", "latency_ms"} <= set(front[0])
    for r in front:  # the recorded values are the file's, and nothing evaluated dominates a front member
        e, lat = points[r["arch"]]
        assert float(r["error_pct"]) == pytest.approx(e, abs=1e-5) and float(r["latency_ms"]) == pytest.approx(lat)
        assert not any(p[0] <= e and p[1] <= lat and p != (e, lat) for p in points.values())
    on_front = {r["arch"] for r in front}
    # ... and every evaluated cell that nothing dominates is on it (up to exact ties)
    for a, (e, lat) in points.items():
        if not any(p[0] <= e and p[1] <= lat and p != (e, lat) for p in points.values()):
            assert a in on_front or any(points[b] == (e, lat) for b in on_front)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["objectives"] == ["error", "latency"] and config["config"]["population"] == 8
    assert (run_dir / "pareto.png").stat().st_size > 0 and (run_dir / "hypervolume.csv").is_file()


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "local"])
def test_every_steady_state_strategy_searches_the_tabular_benchmark(strategy, raw, tmp_path):
    """Steady-state mode: one candidate asked per freed worker, each result told as it arrives; the budget is spent
    on distinct cells, the front is that of what was evaluated, and a resumed run continues to the new budget."""
    def config(budget):
        return SearchConfig(problem="nb201:cifar10:pixel3", strategy=strategy, budget=budget, seed=1, mode="steady",
                            run_dir=str(tmp_path / "r"))

    result = run_search(config(30), progress=False, log=lambda m: None)
    assert result.evaluations == result.trained == 30
    archs = evaluated(tmp_path / "r")
    assert len(set(archs)) == 30
    row = {a: i for i, a in enumerate(raw["archs"])}
    points = {a: (100 - raw["accuracy"]["cifar10"][row[a]], raw["latency_ms"]["pixel3"][row[a]]) for a in archs}
    for r in front_rows(tmp_path / "r"):
        e, lat = points[r["arch"]]
        assert not any(p[0] <= e and p[1] <= lat and p != (e, lat) for p in points.values())
    result = run_search(config(45), resume=True, progress=False, log=lambda m: None)
    assert result.trained == 45 and evaluated(tmp_path / "r")[:30] == archs and len(set(evaluated(tmp_path / "r"))) == 45


def test_steady_state_mode_is_refused_for_a_strategy_without_one(tmp_path):
    with pytest.raises(SearchError, match="strategy local has no steady-state mode"):
        run_search(SearchConfig(problem="nb201:cifar10:pixel3", strategy="local", mode="steady",
                                run_dir=str(tmp_path / "r")), progress=False, log=lambda m: None)
    assert not (tmp_path / "r").exists()


def test_a_search_is_deterministic_and_a_resumed_one_continues_it(tmp_path):
    def config(name, budget):
        return SearchConfig(problem="nb201:cifar100:fpga", strategy="local", budget=budget, seed=2,
                            run_dir=str(tmp_path / name))

    run_search(config("straight", 80), progress=False, log=lambda m: None)
    run_search(config("again", 80), progress=False, log=lambda m: None)
    run_search(config("split", 40), progress=False, log=lambda m: None)
    run_search(config("split", 80), resume=True, progress=False, log=lambda m: None)
    assert evaluated(tmp_path / "straight") == evaluated(tmp_path / "again") == evaluated(tmp_path / "split")
    with pytest.raises(SearchError, match="other settings"):
        run_search(SearchConfig(problem="nb201:cifar100:pixel3", strategy="local", budget=90, seed=2,
                                run_dir=str(tmp_path / "split")), resume=True, progress=False, log=lambda m: None)


def test_lemonade_says_it_mutates_without_inheritance(tmp_path):
    notes = []
    run_search(SearchConfig(problem="nb201:cifar10:raspi4", budget=16, run_dir=str(tmp_path / "r")),
               progress=False, log=notes.append)
    assert any("plain mutations" in n and "without inheritance" in n for n in notes)


def test_a_latency_limit_is_kept_and_other_limits_are_refused(tmp_path):
    result = run_search(SearchConfig(problem="nb201:cifar100:pixel2", max_latency_ms=10, budget=40,
                                     run_dir=str(tmp_path / "r")), progress=False, log=lambda m: None)
    assert result.front and all(e.objectives["latency"] <= 10 for e in result.front)
    with pytest.raises(SearchError, match="measures latency only: --max-size-kb"):
        run_search(SearchConfig(problem="nb201:cifar100:pixel2", max_size_kb=10, run_dir=str(tmp_path / "s")),
                   progress=False, log=lambda m: None)
    with pytest.raises(SearchError, match="no architecture of space 'nb201' meets"):
        run_search(SearchConfig(problem="nb201:cifar100:pixel2", max_latency_ms=1, run_dir=str(tmp_path / "t")),
                   progress=False, log=lambda m: None)
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


def share_of_true_front(raw, archs, dataset, device):
    """The benchmark's scoring, written here from the file alone: HV share with the true front's ideal/nadir."""
    from pymoo.indicators.hv import HV
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.stack([100 - np.asarray(raw["accuracy"][dataset]), np.asarray(raw["latency_ms"][device])], axis=1)
    true = F[NonDominatedSorting().do(F, only_non_dominated_front=True)]
    lo, hi = true.min(0), true.max(0)
    row = {a: i for i, a in enumerate(raw["archs"])}
    found = (F[[row[a] for a in archs]] - lo) / (hi - lo)
    hv = HV(ref_point=np.array([1.1, 1.1]))
    return hv(found[np.all(found < 1.1, axis=1)]) / hv((true - lo) / (hi - lo))


def test_the_default_strategy_beats_random_search_at_300_lookups(raw, tmp_path):
    shares = {}
    for strategy in ("lemonade", "random"):
        run_dir = tmp_path / strategy
        run_search(SearchConfig(problem="nb201:cifar100:fpga", strategy=strategy, budget=300, seed=0,
                                run_dir=str(run_dir)), progress=False, log=lambda m: None)
        shares[strategy] = share_of_true_front(raw, [r["arch"] for r in front_rows(run_dir)], "cifar100", "fpga")
    assert shares["lemonade"] > shares["random"] and shares["lemonade"] >= 0.95, shares


def test_hypervolume_gain_matches_pymoo():
    from pymoo.indicators.hv import HV
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    from edgenas.search.strategies.local import hypervolume_improvement_2d

    rng = np.random.default_rng(0)
    points = rng.random((40, 2))
    front = points[NonDominatedSorting().do(points, only_non_dominated_front=True)]
    reference = (1.2, 1.3)
    hv = HV(ref_point=np.array(reference))
    error, cost = rng.random(60), rng.random(60)
    expected = [hv(np.vstack([front, [[e, c]]])) - hv(front) for e, c in zip(error, cost)]
    assert np.allclose(hypervolume_improvement_2d(error, cost, front, reference), expected)
    # dominated members and an empty front are handled too
    assert np.allclose(hypervolume_improvement_2d(error, cost, points, reference), expected)
    assert np.allclose(hypervolume_improvement_2d(error[:1], cost[:1], np.zeros((0, 2)), reference),
                       [(1.2 - error[0]) * (1.3 - cost[0])])


# ------------------------------------------------------------------------ CLI
def test_cli_search_problems_and_refusals(tmp_path, capsys):
    assert main(["problems", "list"]) == 0
    out = capsys.readouterr().out
    assert "cifar100" in out and "pixel3" in out and "fpga" in out
    assert main(["problems", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["devices"]) == 22
    run_dir = tmp_path / "run"
    assert main(["search", "--problem", "nb201:cifar10:raspi4", "--budget", "30", "--run-dir", str(run_dir),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "30 cells looked up" in out and all(r["arch"] in out for r in front_rows(run_dir))
    assert main(["front", str(run_dir)]) == 0
    assert main(["export", str(run_dir)]) == 1
    assert "tabular benchmark search" in capsys.readouterr().err
    for argv, message in [
        (["search", "--problem", "nb201:cifar10:nodev"], "unknown device 'nodev'"),
        (["search", "--problem", "nb201:cifar10:pixel3", "--problem-data", str(tmp_path / "none.json")],
         "does not exist"),
        (["search", "--problem-data", "x.json"], "--problem-data needs --problem"),
        (["search", "--problem", "nb201:cifar10:pixel3", "--objectives", "error,latency,size"],
         "error and latency only, not size"),
    ]:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("edgenas: error:") and message in err and err.count("\n") == 1


def test_a_search_run_is_driven_one_generation_at_a_time(tmp_path):
    """SearchRun.step() is one generation: a library user sees the archive grow by a batch each step, and the run
    ends with the evaluations run_search gives for the same settings."""
    from edgenas.search import SearchRun

    def config(name):
        return SearchConfig(problem="nb201:cifar10:pixel2", strategy="lemonade", budget=40, population=8, seed=3,
                            run_dir=str(tmp_path / name))

    run = SearchRun(config("stepped"), progress=False, report=False, log=lambda m: None)
    assert not (tmp_path / "stepped").exists()  # nothing is written before the run is opened
    with pytest.raises(SearchError, match="open the search run first"):
        run.step()
    counts = []
    with run:
        while run.step():
            counts.append(run.archive.totals()["evaluations"])
            assert run.generation == len(counts)
        assert not run.step()  # an ended run stays ended
    assert counts == [8, 16, 24, 32, 40][: len(counts)] and counts[-1] == 40
    assert run.result is not None and run.result.evaluations == 40 and run.archive is None
    run_search(config("whole"), progress=False, report=False, log=lambda m: None)
    assert evaluated(tmp_path / "stepped") == evaluated(tmp_path / "whole")
    with pytest.raises(SearchError, match="opened already"):
        run.open()
