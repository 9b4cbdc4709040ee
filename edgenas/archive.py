"""The archive of a search run: every evaluation, in one SQLite file.

Each evaluation is committed as soon as it finishes, so a run killed at any
moment (``kill -9`` included) loses nothing that was finished; ``--resume``
serves finished evaluations from here instead of training them again.

Tables: ``meta`` (key/value: the run's resolved configuration and clock),
``evaluations`` (one row per architecture) and ``hypervolume`` (the history of
the front's hypervolume against evaluations and training compute).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Archive", "Evaluation"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    arch TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'infeasible')),
    reason TEXT NOT NULL DEFAULT '',
    accuracy REAL,
    objectives TEXT NOT NULL,
    violations TEXT NOT NULL DEFAULT '[]',
    train_seconds REAL NOT NULL DEFAULT 0,
    epochs INTEGER NOT NULL DEFAULT 0,
    seed INTEGER,
    weights TEXT,
    strategy TEXT NOT NULL DEFAULT '',
    parent TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hypervolume (
    step INTEGER PRIMARY KEY,
    evaluations INTEGER NOT NULL,
    trained INTEGER NOT NULL,
    train_seconds REAL NOT NULL,
    epochs INTEGER NOT NULL,
    hypervolume REAL NOT NULL,
    front_size INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Evaluation:
    """One evaluated architecture.  ``objectives`` maps objective names to natural-unit values."""

    arch: str
    status: str  # "ok", "failed" (training broke; see reason) or "infeasible" (violates a hard limit; not trained)
    objectives: dict[str, float]
    accuracy: float | None = None
    violations: tuple[float, ...] = ()
    train_seconds: float = 0.0
    epochs: int = 0
    seed: int | None = None
    weights: str | None = None
    reason: str = ""
    strategy: str = ""
    parent: str | None = None
    id: int | None = field(default=None, compare=False)

    @property
    def trained(self) -> bool:
        return self.status in ("ok", "failed")


class Archive:
    """An SQLite archive in ``path`` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        self.db.commit()

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # ----------------------------------------------------------- evaluations
    def add(self, ev: Evaluation) -> Evaluation:
        cur = self.db.execute(
            "INSERT INTO evaluations (arch, status, reason, accuracy, objectives, violations, train_seconds, epochs,"
            " seed, weights, strategy, parent, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.arch, ev.status, ev.reason, ev.accuracy, json.dumps(ev.objectives), json.dumps(list(ev.violations)),
             ev.train_seconds, ev.epochs, ev.seed, ev.weights, ev.strategy, ev.parent, time.time()),
        )
        self.db.commit()
        return Evaluation(**{**ev.__dict__, "id": cur.lastrowid})

    def get(self, arch: str) -> Evaluation | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM evaluations WHERE arch = ?", (arch,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[Evaluation]:
        return [_row(r) for r in self.db.execute(f"SELECT {_COLUMNS} FROM evaluations ORDER BY id")]

    def totals(self) -> dict[str, float]:
        row = self.db.execute(
            "SELECT COUNT(*), SUM(status IN ('ok', 'failed')), COALESCE(SUM(train_seconds), 0),"
            " COALESCE(SUM(epochs), 0) FROM evaluations"
        ).fetchone()
        return {"evaluations": row[0], "trained": row[1] or 0, "train_seconds": row[2], "epochs": row[3]}

    # ----------------------------------------------------------- hypervolume
    def add_hypervolume(self, hypervolume: float, front_size: int) -> None:
        t = self.totals()
        step = self.db.execute("SELECT COALESCE(MAX(step), -1) + 1 FROM hypervolume").fetchone()[0]
        self.db.execute(
            "INSERT INTO hypervolume VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (step, t["evaluations"], t["trained"], t["train_seconds"], t["epochs"], hypervolume, front_size, time.time()),
        )
        self.db.commit()

    def hypervolume_history(self) -> list[dict[str, float]]:
        cols = ("step", "evaluations", "trained", "train_seconds", "epochs", "hypervolume", "front_size")
        return [dict(zip(cols, r)) for r in self.db.execute(f"SELECT {', '.join(cols)} FROM hypervolume ORDER BY step")]


_COLUMNS = ("id, arch, status, reason, accuracy, objectives, violations, train_seconds, epochs, seed, weights,"
            " strategy, parent")


def _row(r: tuple) -> Evaluation:
    return Evaluation(
        id=r[0], arch=r[1], status=r[2], reason=r[3], accuracy=r[4], objectives=json.loads(r[5]),
        violations=tuple(json.loads(r[6])), train_seconds=r[7], epochs=r[8], seed=r[9], weights=r[10],
        strategy=r[11], parent=r[12],
    )
