import sqlite3
import sys

import pytest

from edgenas.search.archive import Archive, Evaluation


def test_archive_round_trip_and_totals(tmp_path):
    path = tmp_path / "archive.sqlite"
    with Archive(path) as archive:
        archive.set_meta("config", {"budget": 3})
        a = archive.add(Evaluation("r8-w1-[k3e3]", "ok", {"error": 5.0, "size_kb": 10.0}, accuracy=0.95,
                                   train_seconds=2.5, epochs=4, seed=11, weights="w.safetensors"))
        archive.add(Evaluation("r8-w1-[k5e3]", "failed", {"error": 100.0}, train_seconds=1.0, epochs=1, reason="boom"))
        archive.add(Evaluation("r8-w1-[k7e3]", "infeasible", {"error": 100.0}, violations=(0.5,), reason="too big"))
        archive.add_hypervolume(12.5, 1)
    with Archive(path) as archive:  # reopened: everything was committed
        assert archive.get_meta("config") == {"budget": 3}
        assert archive.get("r8-w1-[k3e3]") == a and archive.get("nope") is None
        assert [e.status for e in archive.all()] == ["ok", "failed", "infeasible"]
        assert archive.get("r8-w1-[k7e3]").violations == (0.5,)
        assert archive.totals() == {"evaluations": 3, "trained": 2, "train_seconds": 3.5, "epochs": 5}
        (hv,) = archive.hypervolume_history()
        assert hv["hypervolume"] == 12.5 and hv["trained"] == 2 and hv["front_size"] == 1
    rows = sqlite3.connect(str(path)).execute("SELECT COUNT(*) FROM evaluations").fetchone()
    assert rows == (3,)


def test_status_is_an_enum_stored_as_its_value(tmp_path):
    from edgenas.search.archive import Status

    ev = Evaluation("a", "infeasible", {"error": 100.0})
    assert ev.status is Status.INFEASIBLE and ev.status == "infeasible" and f"{ev.status}" == "infeasible"
    assert not ev.trained and Evaluation("b", Status.FAILED, {"error": 100.0}).trained
    with pytest.raises(ValueError):
        Evaluation("c", "done", {"error": 1.0})
    with Archive(tmp_path / "a.sqlite") as archive:
        archive.add(ev)
        back = archive.get("a")
    assert back.status is Status.INFEASIBLE


def _open_and_count(path: str) -> None:
    with Archive(path) as archive:
        archive.totals()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
def test_processes_opening_a_new_archive_at_once_all_succeed(tmp_path):
    """A search creating its archive while another process opens it (a resume, a watcher) never fails on the
    schema migration ("duplicate column") or on the switch to WAL ("database is locked")."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for i in range(10):
        procs = [ctx.Process(target=_open_and_count, args=(str(tmp_path / f"{i}.sqlite"),)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
