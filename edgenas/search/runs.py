"""A run folder on disk: where it is and who holds it, what it records at the start, the output files
(``front.csv``, ``front.json``, ``hypervolume.csv``, ``pareto.png``) and reading a finished run back.

A run lives in one folder: ``config.json``, ``archive.sqlite``, ``weights/``, the outputs above and ``report.html``.
Export, reports and resume read runs only through this module."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from edgenas import __version__
from edgenas.errors import SearchError
from edgenas.files import atomic_write_bytes, atomic_write_text
from edgenas.search.archive import Archive, Evaluation, Status
from edgenas.search.config import SearchConfig
from edgenas.search.objectives import Objective, parse_objectives
from edgenas.search.pareto import pareto_front

if TYPE_CHECKING:
    from edgenas.search.problems import RunSetup

__all__ = ["check_run_dir", "load_run", "lock_run_dir", "record_start", "weights_path", "write_outputs"]


def weights_path(run_dir: str | Path, weights: str) -> Path:
    """Where an evaluation's weights are: archives store them relative to the run folder."""
    path = Path(weights)
    return path if path.is_absolute() else Path(run_dir) / path


def check_run_dir(config: SearchConfig, resume: bool) -> Path:
    """The run folder, checked: a new one must not hold a run; a resumed one must hold this run."""
    run_dir = Path(config.run_dir) if config.run_dir else Path("runs") / (
        _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        + f"-{config.problem.replace(':', '-') if config.problem else config.data.split(':')[0]}-{config.strategy}"
        + f"-s{config.seed}"
    )
    if run_dir.exists() and not run_dir.is_dir():
        raise SearchError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    archive_path = run_dir / "archive.sqlite"
    if resume:
        if not archive_path.is_file():
            raise SearchError(f"nothing to resume in {run_dir}: it has no archive.sqlite")
        with Archive(archive_path, readonly=True) as previous:
            saved_dict = previous.get_meta("config")
        if not isinstance(saved_dict, dict):
            raise SearchError(f"{run_dir}: its archive holds no run settings; it cannot be resumed (start a new run)")
        saved = SearchConfig.from_saved(saved_dict)
        different = [k for k in SearchConfig.identity() if getattr(saved, k) != getattr(config, k)]
        if different:
            raise SearchError(
                f"{run_dir} was started with other settings "
                f"({', '.join(f'{k}={getattr(saved, k)!r}' for k in different)}); "
                "resume with the same settings (only --budget, --time-budget and --workers may change)"
            )
    elif archive_path.exists():
        raise SearchError(f"{run_dir} already holds a run: add --resume to continue it, or choose another --run-dir")
    return run_dir


def lock_run_dir(run_dir: Path):
    """An advisory lock on the run folder for the whole search: a second search on it is refused, not interleaved.
    A crashed search holds no lock (the kernel drops it with the process), so no lock goes stale."""
    import fcntl

    handle = (run_dir / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise SearchError(f"{run_dir} is in use by another edgenas search (process {holder}); wait for it to finish "
                          "or stop it, or choose another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def record_start(config: SearchConfig, resume: bool, run_dir: Path, archive: Archive, setup: RunSetup, objectives,
               reference) -> None:
    """The run's identity in the archive (a new run) and its resolved settings in config.json."""
    space = setup.space
    resolved = {
        "config": asdict(config), "space": {**space.to_dict(), "fingerprint": space.fingerprint}, **setup.resolved,
        "objectives": [o.value for o in objectives], "reference_point": reference,
        "edgenas": __version__,
    }
    if not resume:  # the run's identity in one transaction: a crash leaves all of it or none
        archive.set_metas({"config": asdict(config), "elapsed_seconds": 0.0, "table": setup.table_meta})
    atomic_write_text(run_dir / "config.json", json.dumps(resolved, indent=1) + "\n")


def write_outputs(run_dir: Path, archive: Archive, objectives: Sequence[Objective], plot: bool = True,
                  evaluations: Sequence[Evaluation] | None = None) -> list[Evaluation]:
    """front.csv, front.json, hypervolume.csv and (optionally) pareto.png from the archive (``evaluations``: its
    records, where the caller has just read them)."""
    evaluations = archive.all() if evaluations is None else evaluations
    front = pareto_front(evaluations, objectives)
    columns = ["arch", "accuracy_pct", *[o.column for o in Objective], "train_seconds", "epochs", "weights"]
    rows = []
    for ev in front:
        row = {"arch": ev.arch, "accuracy_pct": None if ev.accuracy is None else round(100 * ev.accuracy, 3)}
        for o in Objective:
            value = ev.objectives.get(o.value)
            row[o.column] = None if value is None else float(f"{float(value):.9g}")  # significant digits: tiny latencies keep theirs
        row.update(train_seconds=round(ev.train_seconds, 2), epochs=ev.epochs, weights=ev.weights)
        rows.append(row)
    atomic_write_text(run_dir / "front.csv", _csv_text(columns, rows))
    atomic_write_text(run_dir / "front.json", json.dumps({"objectives": [o.value for o in objectives], "front": rows},
                                                        indent=1))
    history = archive.hypervolume_history()
    atomic_write_text(run_dir / "hypervolume.csv", _csv_text(
        ["step", "evaluations", "trained", "train_seconds", "epochs", "hypervolume", "front_size"], history))
    if plot:
        plot_front(run_dir / "pareto.png", evaluations, front, objectives)
    return front


def _csv_text(columns: Sequence[str], rows: Sequence[dict]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_front(path: Path, evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
               objectives: Sequence[Objective]) -> None:
    """Pairwise scatter of the objectives: every trained evaluation in grey, the front in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [e for e in evaluations if e.status == Status.OK]
    pairs = [(i, j) for i in range(len(objectives)) for j in range(i + 1, len(objectives))]
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    for ax, (i, j) in zip(axes.flat, pairs):
        oi, oj = objectives[i], objectives[j]
        ax.scatter([e.objectives[oj.value] for e in ok], [e.objectives[oi.value] for e in ok], s=10, c="0.7",
                   label="evaluated")
        ax.scatter([e.objectives[oj.value] for e in front], [e.objectives[oi.value] for e in front], s=22, c="tab:red",
                   label="Pareto front")
        ax.set_xlabel(f"{oj.value} ({oj.unit})")
        ax.set_ylabel(f"{oi.value} ({oi.unit})")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{len(front)} front members of {len(ok)} successful evaluations")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def load_run(run_dir: str | Path) -> tuple[dict, list[Evaluation], list[Objective]]:
    """The resolved config, evaluations and objectives of a run folder."""
    run_dir = Path(run_dir)
    path = run_dir / "archive.sqlite"
    if not path.is_file():
        raise SearchError(f"{run_dir} is not a search run (no archive.sqlite)")
    with Archive(path, readonly=True) as archive:  # read-only: works on a read-only run, never changes it
        config = archive.get_meta("config")
        evaluations = archive.all()
    if not isinstance(config, dict) or not isinstance(config.get("objectives"), str):
        raise SearchError(f"{run_dir}: its archive holds no run settings; it is not a complete search run")
    resolved = {}
    if (run_dir / "config.json").is_file():
        try:
            resolved = json.loads((run_dir / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise SearchError(f"{run_dir}/config.json cannot be read ({exc}); restore it or re-run the search") from None
    return resolved or {"config": config}, evaluations, list(parse_objectives(config["objectives"]))
