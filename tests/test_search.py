import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgenas.errors import SearchError
from edgenas.search.archive import Archive
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search
from edgenas.search.runs import load_run


@pytest.fixture(scope="module")
def setup(search_setup):
    return search_setup


def config(setup, run_dir, **kw) -> SearchConfig:
    base = dict(space=setup["space"], table=setup["table"], population=4, budget=8, epochs=1, workers=1, min_steps=0, drift_check=False,
                run_dir=str(run_dir))
    return SearchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def digits_run(setup, tmp_path_factory):
    run = tmp_path_factory.mktemp("digits") / "run"
    return run, run_search(config(setup, run, workers=2, epochs=4), progress=False, log=lambda m: None)


def test_search_on_digits_writes_a_run(digits_run):
    run, result = digits_run
    assert result.trained == 8 and len(result.front) >= 2 and result.hypervolume > 0
    for name in ("archive.sqlite", "config.json", "front.csv", "front.json", "hypervolume.csv", "pareto.png"):
        assert (run / name).is_file(), name
    front = json.loads((run / "front.json").read_text())
    assert front["objectives"] == ["error", "latency", "memory", "size"] and len(front["front"]) == len(result.front)
    best = max(e.accuracy for e in result.front)
    assert best > 0.5  # four epochs on digits are far above chance (10%)
    for ev in result.front:
        assert ev.weights and (run / ev.weights).is_file()
        assert ev.objectives["latency"] > 0 and ev.objectives["size"] > 0
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["data"]["in_channels"] == 1 and resolved["reference_point"][0] == 100.0
    _, evaluations, objectives = load_run(run)
    assert len(evaluations) == 8 and [o.value for o in objectives][0] == "error"
    with Archive(run / "archive.sqlite") as archive:
        history = archive.hypervolume_history()
    assert len(history) == 2 and history[-1]["hypervolume"] >= history[0]["hypervolume"]


def test_resume_continues_without_retraining_and_matches_one_run(setup, tmp_path):
    run_search(config(setup, tmp_path / "a", budget=4), progress=False, log=lambda m: None)
    with Archive(tmp_path / "a" / "archive.sqlite") as archive:
        first = archive.all()
    run_search(config(setup, tmp_path / "a", budget=8), resume=True, progress=False, log=lambda m: None)
    run_search(config(setup, tmp_path / "b", budget=8), progress=False, log=lambda m: None)
    with Archive(tmp_path / "a" / "archive.sqlite") as a, Archive(tmp_path / "b" / "archive.sqlite") as b:
        resumed, straight = a.all(), b.all()
    assert resumed[: len(first)] == first  # finished work kept as it was
    assert [e.arch for e in resumed] == [e.arch for e in straight]  # the same trajectory as one run
    assert [e.accuracy for e in resumed] == [e.accuracy for e in straight] and len(resumed) == 8


def test_resume_refuses_other_settings_and_fresh_runs_refuse_old_folders(setup, tmp_path):
    run_search(config(setup, tmp_path / "r", budget=4), progress=False, log=lambda m: None)
    with pytest.raises(SearchError, match="already holds a run: add --resume"):
        run_search(config(setup, tmp_path / "r", budget=4), progress=False, log=lambda m: None)
    with pytest.raises(SearchError, match=r"other settings \(epochs=1\)"):
        run_search(config(setup, tmp_path / "r", epochs=3), resume=True, progress=False, log=lambda m: None)
    with pytest.raises(SearchError, match="nothing to resume"):
        run_search(config(setup, tmp_path / "none"), resume=True, progress=False, log=lambda m: None)
    # A run saved before a setting existed resumes under that setting's default, and only under it.
    with Archive(tmp_path / "r" / "archive.sqlite") as archive:
        saved = archive.get_meta("config")
        del saved["entropy_weight"]
        archive.set_meta("config", saved)
    with pytest.raises(SearchError, match=r"other settings \(entropy_weight=0.01\)"):
        run_search(config(setup, tmp_path / "r", entropy_weight=0.1), resume=True, progress=False, log=lambda m: None)
    result = run_search(config(setup, tmp_path / "r", budget=5), resume=True, progress=False, log=lambda m: None)
    assert result.trained == 5
    # A run from before --min-steps trained without it, and resumes only that way (not under the new default).
    with Archive(tmp_path / "r" / "archive.sqlite") as archive:
        saved = archive.get_meta("config")
        del saved["min_steps"]
        archive.set_meta("config", saved)
    with pytest.raises(SearchError, match=r"other settings \(min_steps=0\)"):
        run_search(config(setup, tmp_path / "r", budget=6, min_steps=200), resume=True, progress=False,
                   log=lambda m: None)


def test_hard_limits_reject_before_training(setup, tmp_path):
    result = run_search(config(setup, tmp_path / "c", max_size_kb=14.0, strategy="random", budget=4), progress=False,
                        log=lambda m: None)
    with Archive(tmp_path / "c" / "archive.sqlite") as archive:
        evaluations = archive.all()
    trained = [e for e in evaluations if e.trained]
    assert trained and all(e.objectives["size"] <= 14.0 for e in trained)
    assert all(e.objectives["size"] <= 14.0 for e in result.front)
    infeasible = [e for e in evaluations if e.status == "infeasible"]
    assert all(e.train_seconds == 0 and "max-size-kb" in e.reason for e in infeasible)


def _wait_for_trained(proc, run, n: int, limit_s: float = 300) -> None:
    """Wait (bounded) until the search in ``proc`` has trained ``n`` networks into ``run``."""
    deadline = time.monotonic() + limit_s
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        if (run / "archive.sqlite").exists():
            with Archive(run / "archive.sqlite") as archive:
                if archive.totals()["trained"] >= n:
                    return
        time.sleep(0.05)


def test_a_killed_search_resumes(setup, tmp_path):
    run = tmp_path / "k"
    argv = [sys.executable, "-m", "edgenas", "search", "--space", setup["space"], "--table", setup["table"],
            "--population", "4", "--budget", "8", "--epochs", "2", "--workers", "1", "--min-steps", "0", "--no-drift-check", "--run-dir", str(run), "--quiet"]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        _wait_for_trained(proc, run, 3)
        os.kill(proc.pid, signal.SIGKILL)
    with Archive(run / "archive.sqlite") as archive:
        before = archive.all()
    assert 3 <= len(before) < 8
    finished = subprocess.run(argv + ["--resume"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    with Archive(run / "archive.sqlite") as archive:
        after = archive.all()
        assert archive.totals()["trained"] == 8
    assert after[: len(before)] == before
    assert len({e.arch for e in after}) == len(after)
    assert "front of" in finished.stdout


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["search", "--objectives", "error,speed"], "unknown objective 'speed'"),
        (["search", "--objectives", "latency,size"], "must include error"),
        (["search", "--objectives", "error,energy"], "energy are not available"),
        (["search", "--strategy", "cmaes"], "unknown strategy 'cmaes'"),
        (["search", "--data", "npz:/nope.npz"], "does not exist"),
        (["search", "--resume"], "--resume needs --run-dir"),
        (["search", "--budget", "0"], "--budget, --epochs, --finetune-epochs and --workers must be at least 1"),
        (["search", "--max-size-kb", "-3"], "--max-size-kb must be positive"),
        (["search", "--entropy-weight", "-1"], "--penalty-weight and --entropy-weight must be zero or positive"),
        (["search", "--device", "raspberry-pi-ssh"], "was measured on another setup: device 'local-ort' (the table)"),
        (["search", "--budget", "lots"], "argument --budget: invalid int value: 'lots'"),
        (["search", "--lr", "0"], "lr > 0"),
        (["search", "--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
    ],
)
def test_bad_search_input_is_one_line(setup, tmp_path, capsys, argv, fragment):
    from edgenas.cli import main

    extra = ["--space", setup["space"], "--table", setup["table"], "--run-dir", str(tmp_path / "x")]
    if "--resume" in argv:
        extra = ["--space", setup["space"]]
    try:
        code = main(argv + extra)
    except SystemExit as exc:  # argparse's errors end the process the same way: one line, status 1
        code = exc.code
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and fragment in err, err
    assert err.startswith("edgenas: error: ")
    assert not (tmp_path / "x").exists()  # a refused setting leaves no run folder behind


def test_front_command(digits_run, tmp_path, capsys):
    from edgenas.cli import main

    run, _ = digits_run
    assert main(["front", str(run)]) == 0
    out = capsys.readouterr().out
    assert "front of" in out and "latency_ms" in out and "r8-w1-" in out
    assert main(["front", str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["front"] and all(np.isfinite(e["latency"]) for e in data["front"])
    assert main(["front", str(tmp_path / "nope")]) == 1


def test_time_budget_stops_the_search(setup, tmp_path):
    result = run_search(config(setup, tmp_path / "t", time_budget_min=1e-4, budget=100), progress=False,
                        log=lambda m: None)
    # checked between evaluations, not only between generations: the first network ends the run
    assert result.trained == 1 and any("time budget" in note for note in result.notes)
    assert (tmp_path / "t" / "hypervolume.csv").read_text().count("\n") == 2  # and its hypervolume is written
    with pytest.raises(SearchError, match="--time-budget must be a positive number"):
        run_search(config(setup, tmp_path / "t2", time_budget_min=0), progress=False, log=lambda m: None)


def test_lemonade_children_inherit_weights_and_fine_tune_briefly(setup, tmp_path):
    run = tmp_path / "lemonade"
    result = run_search(config(setup, run, strategy="lemonade", budget=12, epochs=3, finetune_epochs=1, workers=2),
                        progress=False, log=lambda m: None)
    assert result.trained == 12
    with Archive(run / "archive.sqlite") as archive:
        evaluations = archive.all()
    by_arch = {e.arch: e for e in evaluations}
    first, children = evaluations[:4], evaluations[4:]
    assert all(e.parent is None and e.epochs == 3 for e in first)
    assert len(children) == 8
    for child in children:
        parent = by_arch[child.parent]
        assert child.epochs == 1 and parent.status == "ok" and (run / parent.weights).is_file()
        assert child.strategy == "lemonade" and child.status == "ok"
    # Inherited weights carry the parents' training: one epoch of a child is far better than one from scratch.
    scratch = run_search(config(setup, tmp_path / "scratch", strategy="random", budget=4, epochs=1),
                         progress=False, log=lambda m: None)
    with Archive(scratch.run_dir / "archive.sqlite") as archive:
        scratch_best = max(e.accuracy for e in archive.all())
    assert np.median([c.accuracy for c in children]) > scratch_best


def test_lemonade_resume_matches_one_run(setup, tmp_path):
    kw = dict(strategy="lemonade", epochs=2, finetune_epochs=1)
    run_search(config(setup, tmp_path / "a", budget=6, **kw), progress=False, log=lambda m: None)
    run_search(config(setup, tmp_path / "a", budget=10, **kw), resume=True, progress=False, log=lambda m: None)
    run_search(config(setup, tmp_path / "b", budget=10, **kw), progress=False, log=lambda m: None)
    with Archive(tmp_path / "a" / "archive.sqlite") as a, Archive(tmp_path / "b" / "archive.sqlite") as b:
        resumed, straight = a.all(), b.all()
    assert [(e.arch, e.parent) for e in resumed] == [(e.arch, e.parent) for e in straight]
    assert [e.accuracy for e in resumed] == [e.accuracy for e in straight]


def test_rl_search_with_the_mnasnet_reward_from_the_cli(setup, tmp_path, capsys):
    from edgenas.cli import main

    run = tmp_path / "rl"
    code = main(["search", "--space", setup["space"], "--table", setup["table"], "--strategy", "rl", "--reward",
                 "mnasnet", "--target-latency-ms", "0.05", "--mnasnet-beta", "-0.5", "--entropy-weight", "0.05",
                 "--population", "4", "--budget", "8", "--epochs", "1", "--min-steps", "0", "--no-drift-check",
                 "--workers", "1", "--run-dir", str(run), "--quiet"])
    assert code == 0
    with Archive(run / "archive.sqlite") as archive:
        evaluations = archive.all()
        saved = archive.get_meta("config")
    assert len(evaluations) == 8 and all(e.strategy == "rl" for e in evaluations)
    assert saved["reward"] == "mnasnet" and saved["target_latency_ms"] == 0.05
    assert (saved["mnasnet_alpha"], saved["mnasnet_beta"], saved["entropy_weight"]) == (-0.07, -0.5, 0.05)
    from edgenas.search.config import SearchConfig
    from edgenas.search.strategies import get_strategy

    rl = get_strategy("rl", SearchConfig.from_saved(saved).strategy_settings()).rl
    assert (rl.reward, rl.alpha, rl.beta, rl.entropy_weight) == ("mnasnet", -0.07, -0.5, 0.05)
    code = main(["search", "--space", setup["space"], "--table", setup["table"], "--strategy", "rl",
                 "--target-energy-mj", "1", "--run-dir", str(tmp_path / "bad"), "--quiet"])
    assert code == 1 and "target(s) for energy" in capsys.readouterr().err


def test_a_run_shorter_than_one_generation_still_has_its_hypervolume(setup, tmp_path):
    run = tmp_path / "short"
    result = run_search(config(setup, run, budget=2, population=4), progress=False, log=lambda m: None)
    assert result.trained == 2 and result.hypervolume > 0
    rows = (run / "hypervolume.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and float(rows[1].split(",")[5]) == pytest.approx(result.hypervolume)
    # resuming replays nothing new and must not add a duplicate row
    run_search(config(setup, run, budget=2, population=4), resume=True, progress=False, log=lambda m: None)
    assert len((run / "hypervolume.csv").read_text().strip().splitlines()) == 2


def test_networks_at_chance_are_flagged_and_explained(setup, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((400, 8, 8)).astype(np.float32)  # noise with random labels: nothing to learn
    np.savez(tmp_path / "noise.npz", x=x, y=np.arange(400) % 10)
    messages = []
    result = run_search(config(setup, tmp_path / "run", data=f"npz:{tmp_path / 'noise.npz'}", budget=4),
                        progress=False, log=messages.append)
    with Archive(tmp_path / "run" / "archive.sqlite") as archive:
        evaluations = archive.all()
    assert all(e.at_chance for e in evaluations if e.status == "ok") and len(evaluations) == 4
    assert any("generation 1: all 4 trained network(s) scored at chance" in m for m in messages)
    assert any("4 of 4 trained network(s) scored at chance" in n and "none learned" in n for n in result.notes)
    if len(result.front) == 1:
        assert any(n.startswith("front of 1:") and "at chance" in n for n in result.notes)
    # digits are learned: nothing is flagged there
    digits = run_search(config(setup, tmp_path / "digits", budget=4, epochs=3), progress=False, log=lambda m: None)
    assert not any("at chance" in n for n in digits.notes)


def test_min_steps_raise_the_epochs_and_are_recorded(setup, tmp_path):
    run = tmp_path / "steps"
    messages = []
    run_search(config(setup, run, budget=2, min_steps=100, strategy="random"), progress=False, log=messages.append)
    resolved = json.loads((run / "config.json").read_text())
    training = resolved["training"]
    # digits: 1,437 training images, batch 64, 23 steps an epoch: 100 steps need 5 epochs (the user asked for 1)
    assert training["batch_size"] == 64 and training["epochs"] == 5 and training["steps"] == 115
    assert training["augment"] == "none" and training["flip"] is False  # greyscale digits are never mirrored
    assert resolved["data"]["preprocessing"]["crop"].startswith("centre square")
    with Archive(run / "archive.sqlite") as archive:
        assert {(e.epochs, e.steps) for e in archive.all()} == {(5, 115)}
    assert any("5 epochs (115 steps) per network" in m for m in messages)


def test_settings_are_refused_before_a_run_folder_exists(setup, tmp_path):
    run = tmp_path / "bad"
    for bad in (dict(lr=0), dict(augment="heavy"), dict(batch_size=1), dict(min_steps=-1), dict(resolution=100000),
                dict(strategy="cmaes"), dict(optimizer="adam")):
        with pytest.raises(SearchError):
            run_search(config(setup, run, **bad), progress=False, log=lambda m: None)
        assert not run.exists(), bad
    result = run_search(config(setup, run, budget=2), progress=False, log=lambda m: None)  # the corrected command
    assert result.trained == 2


def test_an_unmeetable_limit_is_refused_before_anything_is_written(setup, tmp_path):
    with pytest.raises(SearchError, match=r"no architecture .* meets the hard limits: --max-latency-ms 1e-06 \(the "
                                          r"cheapest of 20,001 architectures sampled, the smallest included, needs"):
        run_search(config(setup, tmp_path / "r", max_latency_ms=1e-6), progress=False, log=lambda m: None)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("mode", ["generational", "steady"])
@pytest.mark.parametrize("strategy", ["random", "lemonade", "nsga2", "rl"])
def test_a_budget_larger_than_the_space_ends(tmp_path_factory, strategy, mode):
    """A space of 2 architectures and a budget of 6: every strategy stops, having trained what exists, in either
    mode."""
    import yaml

    from edgenas.hardware.devices import get_device
    from edgenas.hardware.profile import MeasurementSettings, profile_device
    from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec

    folder = tmp_path_factory.mktemp("two")
    space = SearchSpace(name="two", stem=StemSpec(8), head=HeadSpec(16), resolutions=(8,),
                        stages=(StageSpec(8, 1, (1,), (3, 5), (3,)),))
    assert space.n_architectures() == 2
    (folder / "space.yaml").write_text(yaml.safe_dump(space.to_dict()))
    table = folder / "table.json"
    if not table.exists():
        profile_device(get_device("local-ort"), space, "int8", 1, 10, table,
                       MeasurementSettings(warmup_runs=1, rounds=1, runs_per_round=3, calibration_networks=1),
                       quiet=True)
    result = run_search(SearchConfig(space=str(folder / "space.yaml"), table=str(table), strategy=strategy,
                                     population=2, budget=6, epochs=1, min_steps=0, workers=1, drift_check=False,
                                     mode=mode, run_dir=str(folder / f"run-{strategy}")),
                        progress=False, log=lambda m: None)
    assert result.trained == 2
    assert any(n.startswith("stopped:") and ("nothing new" in n or "trained nothing" in n) for n in result.notes)


def _children(pid: int) -> set[int]:
    out = set()
    for stat in __import__("pathlib").Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_busy_run_folder_is_refused_and_no_worker_outlives_a_killed_search(setup, tmp_path):
    run = tmp_path / "busy"
    argv = [sys.executable, "-m", "edgenas", "search", "--space", setup["space"], "--table", setup["table"],
            "--population", "4", "--budget", "8", "--epochs", "2", "--workers", "2", "--min-steps", "0",
            "--no-drift-check", "--run-dir", str(run), "--quiet"]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        _wait_for_trained(proc, run, 1)
        workers = _children(proc.pid)
        assert workers  # the training processes
        with pytest.raises(SearchError, match="is in use by another edgenas search"):
            run_search(config(setup, run, workers=2, epochs=2), resume=True, progress=False, log=lambda m: None)
        os.kill(proc.pid, signal.SIGKILL)
    def alive(pid: int) -> bool:  # running, not a zombie waiting to be reaped
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    deadline = time.monotonic() + 30
    while any(alive(w) for w in workers):
        assert time.monotonic() < deadline, "a worker outlived the killed search"
        time.sleep(0.2)
    with Archive(run / "archive.sqlite") as archive:
        before = archive.all()
    result = run_search(config(setup, run, workers=2, epochs=2), resume=True, progress=False, log=lambda m: None)
    with Archive(run / "archive.sqlite") as archive:
        after = archive.all()
    assert after[: len(before)] == before and result.trained == 8  # nothing finished was lost or trained again


def test_resume_with_a_table_of_other_measurements_is_refused(setup, tmp_path):
    run = tmp_path / "t"
    run_search(config(setup, run, budget=2), progress=False, log=lambda m: None)
    other = json.loads(Path(setup["table"]).read_text())
    key = sorted(other["entries"])[0]
    other["entries"][key]["latency_ms"] *= 3  # the same device and space, other measurements
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(SearchError, match=r"was searched with table .* \(other measurements than"):
        run_search(config(setup, run, budget=4, table=str(tmp_path / "other.json")), resume=True, progress=False,
                   log=lambda m: None)
    result = run_search(config(setup, run, budget=4), resume=True, progress=False, log=lambda m: None)
    assert result.trained == 4  # the run is intact and resumes with its own table


@pytest.mark.slow
def test_own_photos_learn_with_the_default_recipe(tmp_path):
    """The default search (shipped table, LEMONADE, min-steps rule) on 2 classes of ~200 real photos."""
    from edgenas.nn.photos import photo_folder, sklearn_photos

    photo_folder(tmp_path / "photos", sklearn_photos(), per_class=100, seed=11)
    result = run_search(SearchConfig(data=f"imagefolder:{tmp_path / 'photos'}", budget=4, population=4,
                                     run_dir=str(tmp_path / "run")), progress=False, log=lambda m: None)
    assert max(e.accuracy for e in result.front) > 0.9 and not any("at chance" in n for n in result.notes)
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["data"]["resolution"] == 32 and resolved["training"]["batch_size"] == 16
