"""Executors against real processes and a real Ray: results, lost workers and nodes, cancelling, the same evaluations.

The Ray tests start a real head on 127.0.0.1 (``ray start --head --block``, stopped at the end) or a multi-node
cluster in this process (``ray.cluster_utils.Cluster``); the heavier ones are marked ``slow``.
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgenas.cli import main
from edgenas.errors import SearchError
from edgenas.search.config import SearchConfig
from edgenas.search.executors import ExecutorSettings, LocalProcessExecutor, TaskLost, make_executor
from edgenas.search.loop import run_search
from edgenas.search.testing import no_init, sleep_task

ray = pytest.importorskip("ray")


def _wait_for(path: Path, limit_s: float = 120.0) -> int:
    """The process id a task wrote to ``path`` (waiting, bounded, for the task to start)."""
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert time.monotonic() < deadline, f"the task never started ({path.name})"
        time.sleep(0.05)
    return int(path.read_text())


def _drain(executor) -> dict:
    out = {}
    while executor.pending:
        key, result, attempts = executor.wait()
        out[key] = (result, attempts)
    return out


# ------------------------------------------------------------------ local
def test_local_executor_returns_every_task_with_its_key():
    with LocalProcessExecutor(sleep_task, 2, no_init, ()) as executor:
        results = dict((k, (r, n)) for k, r, n in executor.run([(i, (i, 0.0)) for i in range(5)]))
    assert sorted(results) == list(range(5))
    assert all(r["value"] == k and n == 1 for k, (r, n) in results.items())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker by its process id")
@pytest.mark.parametrize("retries", [0, 1])
def test_a_killed_local_worker_is_retried_then_lost(tmp_path, retries):
    with LocalProcessExecutor(sleep_task, 2, no_init, (), retries=retries) as executor:
        executor.submit("a", ("a", 3.0, str(tmp_path)))
        os.kill(_wait_for(tmp_path / "a.pid"), signal.SIGKILL)
        results = _drain(executor)
        executor.submit("b", ("b", 0.0))  # the executor still works after it
        results.update(_drain(executor))
    result, attempts = results["a"]
    if retries:
        assert result["value"] == "a" and attempts == 2
    else:
        assert isinstance(result, TaskLost) and "died" in result.reason and attempts == 1
    assert results["b"][0]["value"] == "b"


# ------------------------------------------------------------------ a Ray head on 127.0.0.1
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A real Ray head on 127.0.0.1 with 2 CPUs, its address; stopped (with its workers) when the module ends."""
    exe = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if exe is None:
        pytest.skip("the ray command is not installed")
    port = _free_port()
    # Ray rewrites 127.0.0.1 in an address to this machine's outward IP, which a head bound to the loopback does not
    # listen on, unless it runs local-only (the switch that also keeps it off the network on macOS and Windows).
    from ray._private import ray_constants

    # Token authentication is on for a head where ~/.ray/auth_token exists (a local ray.init writes one), and a
    # driver given an address uses it only with RAY_AUTH_MODE=token: the loopback head runs without it.
    names = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE")
    saved = {name: os.environ.get(name) for name in names}, ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")  # the head, searches started
    ray_constants.ENABLE_RAY_CLUSTER = False  # for this process (read when Ray was imported)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    log = (tmp_path_factory.mktemp("ray") / "head.log").open("w")
    proc = subprocess.Popen([exe, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "ray start --head exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not come up"
                time.sleep(0.5)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        log.close()
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
        for name, value in saved[0].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _evaluations(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "archive.sqlite") as db:
        return sorted(db.execute("SELECT arch, status, accuracy FROM evaluations"))


def test_ray_gives_the_same_evaluations_as_local(search_setup, ray_head, tmp_path):
    """The bar: same seed and budget, generational mode: the same architectures and accuracies."""
    base = dict(space=search_setup["space"], table=search_setup["table"], population=3, budget=6, epochs=1,
                min_steps=0, drift_check=False, workers=2, seed=3)
    run_search(SearchConfig(run_dir=str(tmp_path / "local"), **base), progress=False, log=lambda m: None)
    result = run_search(SearchConfig(run_dir=str(tmp_path / "ray"), executor="ray", ray_address=ray_head, **base),
                        progress=False, log=lambda m: None)
    assert not ray.is_initialized()  # the search connected, and disconnected at its end
    local, remote = _evaluations(tmp_path / "local"), _evaluations(tmp_path / "ray")
    assert result.trained == 6 and len(local) == 6
    assert remote == local
    with sqlite3.connect(tmp_path / "ray" / "archive.sqlite") as db:
        assert set(db.execute("SELECT attempts, train_device FROM evaluations WHERE status = 'ok'")) == {(1, "cpu")}
    weights = list((tmp_path / "ray" / "weights").glob("*.safetensors"))
    assert len(weights) == sum(1 for _, status, _ in remote if status == "ok")  # written by the driver


def test_a_task_error_on_ray_is_not_retried(ray_head, tmp_path):
    settings = ExecutorSettings(kind="ray", address=ray_head, threads=1)
    with make_executor(sleep_task, settings, no_init, ()) as executor:
        assert executor.slots == 2
        executor.submit("bad", ("bad", 0.0, None, True))
        executor.submit("good", ("good", 0.0))
        results = _drain(executor)
    assert isinstance(results["bad"][0], TaskLost) and "failed on purpose" in results["bad"][0].reason
    assert results["bad"][1] == 1 and results["good"][0]["value"] == "good"


def test_closing_a_ray_executor_cancels_its_running_tasks(ray_head, tmp_path):
    settings = ExecutorSettings(kind="ray", address=ray_head, threads=1)
    executor = make_executor(sleep_task, settings, no_init, ())
    try:
        executor.submit("long", ("long", 600.0, str(tmp_path)))
        pid = _wait_for(tmp_path / "long.pid")
    finally:
        executor.close()  # what Ctrl-C does (the search closes its evaluator)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]:
        assert time.monotonic() < deadline, "the cancelled task's worker still runs"
        time.sleep(0.2)


def test_a_ray_task_larger_than_every_node_is_refused(ray_head):
    with pytest.raises(SearchError, match="no node of the Ray cluster can run a task of 8 CPU"):
        make_executor(sleep_task, ExecutorSettings(kind="ray", address=ray_head, threads=8), no_init, ())
    assert not ray.is_initialized()


@pytest.mark.parametrize("argv, message", [
    (["--executor", "ray", "--ray-address", "127.0.0.1:{closed}"], "cannot connect to the Ray cluster at 127.0.0.1:"),
    (["--executor", "ray", "--ray-address", "nowhere"], "expected auto, HOST:PORT or ray://HOST:PORT"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address is for --executor ray"),
    (["--task-retries", "-1"], "--task-retries must be at least 0"),
])
def test_bad_cluster_settings_get_one_line(search_setup, tmp_path, capsys, argv, message):
    argv = [a.replace("{closed}", str(_free_port())) for a in argv]
    run = tmp_path / "r"
    code = main(["search", "--space", search_setup["space"], "--table", search_setup["table"], "--budget", "2",
                 "--no-drift-check", "--run-dir", str(run), "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("edgenas: error:")]
    assert len(errors) == 1 and message in errors[0] and err.splitlines()[-1] == errors[0]
    assert not (run / "archive.sqlite").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_training_without_a_gpu_is_refused(search_setup, tmp_path, capsys):
    code = main(["search", "--space", search_setup["space"], "--table", search_setup["table"], "--budget", "2",
                 "--no-drift-check", "--train-device", "cuda", "--run-dir", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("edgenas: error: --train-device cuda, but torch sees no CUDA GPU")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_training_is_recorded(search_setup, tmp_path):
    run_search(SearchConfig(space=search_setup["space"], table=search_setup["table"], population=2, budget=2,
                            epochs=1, min_steps=0, drift_check=False, workers=1, train_device="cuda",
                            run_dir=str(tmp_path / "r")), progress=False, log=lambda m: None)
    with sqlite3.connect(tmp_path / "r" / "archive.sqlite") as db:
        assert {r[0] for r in db.execute("SELECT train_device FROM evaluations WHERE status = 'ok'")} == {"cuda"}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9")
def test_a_search_on_ray_killed_with_kill_9_resumes(search_setup, ray_head, tmp_path):
    from edgenas.search.archive import Archive
    from tests.test_search import _wait_for_trained

    run = tmp_path / "k"
    argv = [sys.executable, "-m", "edgenas", "search", "--space", search_setup["space"], "--table",
            search_setup["table"], "--population", "4", "--budget", "8", "--epochs", "2", "--min-steps", "0",
            "--no-drift-check", "--executor", "ray", "--ray-address", ray_head, "--run-dir", str(run), "--quiet"]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        _wait_for_trained(proc, run, 2)
        os.kill(proc.pid, signal.SIGKILL)
    with Archive(run / "archive.sqlite") as archive:
        before = archive.all()
    result = run_search(SearchConfig(space=search_setup["space"], table=search_setup["table"], population=4,
                                     budget=8, epochs=2, min_steps=0, drift_check=False, executor="ray",
                                     ray_address=ray_head, run_dir=str(run)),
                        resume=True, progress=False, log=lambda m: None)
    with Archive(run / "archive.sqlite") as archive:
        after = archive.all()
    assert after[: len(before)] == before and result.trained == 8  # nothing finished was lost or trained again
    assert len({e.arch for e in after}) == len(after)


# ------------------------------------------------------------------ a multi-node cluster in this process
@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.mark.slow
def test_a_node_removed_mid_task_is_retried(cluster, tmp_path):
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    with make_executor(sleep_task, ExecutorSettings(kind="ray", threads=1), no_init, ()) as executor:
        assert executor.slots == 2
        for key in ("a", "b"):
            executor.submit(key, (key, 8.0, str(tmp_path)))
        for key in ("a", "b"):
            _wait_for(tmp_path / f"{key}.pid")
        doomed_pids = {int(p.name) for p in Path("/proc").glob("[0-9]*") if _descends(int(p.name), doomed)}
        lost = {k for k in ("a", "b") if int((tmp_path / f"{k}.pid").read_text()) in doomed_pids}
        assert len(lost) == 1  # one task runs on each node
        cluster.remove_node(doomed)
        results = _drain(executor)
    assert {k: r["value"] for k, (r, _) in results.items()} == {"a": "a", "b": "b"}  # both finished
    (key,) = lost
    assert results[key][1] == 2 and results[({"a", "b"} - lost).pop()][1] == 1


def _descends(pid: int, node) -> bool:
    """Whether process ``pid`` was started by the raylet of ``node`` (its workers are the raylet's children)."""
    raylet = node.all_processes["raylet"][0].process.pid
    while pid > 1:
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if ppid == raylet:
            return True
        pid = ppid
    return False


@pytest.mark.slow
@pytest.mark.parametrize("retries", [0, 1])
def test_a_ray_worker_killed_mid_task_is_retried_then_lost(cluster, tmp_path, retries):
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    settings = ExecutorSettings(kind="ray", threads=1, retries=retries)
    with make_executor(sleep_task, settings, no_init, ()) as executor:
        executor.submit("a", ("a", 8.0, str(tmp_path / "pids")))
        executor.submit("b", ("b", 0.5))
        (tmp_path / "pids").mkdir()
        os.kill(_wait_for(tmp_path / "pids" / "a.pid"), signal.SIGKILL)
        results = _drain(executor)
    result, attempts = results["a"]
    if retries:
        assert result["value"] == "a" and attempts == 2
    else:
        assert isinstance(result, TaskLost) and "lost 1 time(s)" in result.reason and attempts == 1
    assert results["b"] == ({"value": "b", "pid": results["b"][0]["pid"]}, 1)


def _kill_first_task(stop, killed: list, limit_s: float = 300.0) -> None:
    """Kill -9 the first Ray worker seen running a task (Ray titles it ``ray::_call``)."""
    deadline = time.monotonic() + limit_s
    while not stop.is_set() and time.monotonic() < deadline:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                title = cmdline.read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::_call"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
                killed.append(int(cmdline.parent.name))
                return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_search_goes_on_when_a_task_is_lost(search_setup, cluster, tmp_path):
    """A worker killed mid-training with no retries: that evaluation is recorded as failed, with the reason, and
    the search finishes its budget."""
    import threading

    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_task, args=(stop, killed), daemon=True)
    killer.start()
    try:
        result = run_search(SearchConfig(space=search_setup["space"], table=search_setup["table"], population=2,
                                         budget=4, epochs=1, min_steps=0, drift_check=False, executor="ray",
                                         threads=1, task_retries=0, run_dir=str(tmp_path / "r")),
                            progress=False, log=lambda m: None)
    finally:
        stop.set()
        killer.join(10)
    assert killed
    with sqlite3.connect(tmp_path / "r" / "archive.sqlite") as db:
        lost = list(db.execute("SELECT reason, attempts FROM evaluations WHERE reason LIKE 'not evaluated%'"))
    assert result.trained == 4
    assert len(lost) == 1 and lost[0][0].startswith("not evaluated: lost 1 time(s)") and lost[0][1] == 1


def test_without_an_address_ray_runs_its_own_instance_beside_a_running_cluster(ray_head, monkeypatch):
    """``ray.init()`` alone would join a cluster that ``ray start`` left on this machine; the search starts its own."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with make_executor(sleep_task, ExecutorSettings(kind="ray", threads=1), no_init, ()) as executor:
        assert ray.get_runtime_context().gcs_address != ray_head
        executor.submit("x", ("x", 0.0))
        assert executor.wait()[1]["value"] == "x"
    assert not ray.is_initialized()
