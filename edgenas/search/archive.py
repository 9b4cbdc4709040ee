"""The archive of a search run: every evaluation, in one SQLite file.

Each evaluation is committed as soon as it finishes, so a run killed at any
moment (``kill -9`` included) loses nothing that was finished; ``--resume``
serves finished evaluations from here instead of training them again.

Tables: ``meta`` (key/value: the run's resolved configuration and clock),
``evaluations`` (one row per architecture) and ``hypervolume`` (the history of
the front's hypervolume against evaluations and training compute).
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Status", "Archive", "Evaluation"]

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
    steps INTEGER NOT NULL DEFAULT 0,
    at_chance INTEGER NOT NULL DEFAULT 0,
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


class Status(str, enum.Enum):
    """How an evaluation ended.  A ``str`` enum: ``Status.OK == "ok"``, and it is stored and printed as its value."""

    OK = "ok"  # evaluated: trained (or looked up) and measured
    FAILED = "failed"  # training broke; the reason is recorded
    INFEASIBLE = "infeasible"  # breaks a hard limit: recorded, never trained

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Evaluation:
    """One evaluated architecture.  ``objectives`` maps objective names to natural-unit values."""

    arch: str
    status: Status  # a plain "ok", "failed" or "infeasible" is taken too (and made a Status)
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
    steps: int = 0  # optimizer steps of its training
    at_chance: bool = False  # validation accuracy within a binomial margin of the majority-class rate
    attempts: int = 1  # times it was started: more than 1 where a worker or node was lost mid-training (Ray)
    train_device: str = ""  # where it trained: "cpu" or "cuda" ("" for lookups and untrained candidates)
    id: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            object.__setattr__(self, "status", Status(self.status))  # ValueError for an unknown status

    @property
    def trained(self) -> bool:
        return self.status in (Status.OK, Status.FAILED)


#: Columns added after the first release, with their definitions (older archives get them on open) and the value an
#: older archive opened read-only reads for them.
_ADDED_COLUMNS = {"steps": ("INTEGER NOT NULL DEFAULT 0", "0"), "at_chance": ("INTEGER NOT NULL DEFAULT 0", "0"),
                  "attempts": ("INTEGER NOT NULL DEFAULT 1", "1"), "train_device": ("TEXT NOT NULL DEFAULT ''", "''")}


def _set_wal(db: sqlite3.Connection, tries: int = 100) -> None:
    """Write-ahead logging (readers never block the search).  Switching a new file to it fails with "database is
    locked", without waiting, while another process creates the same file: retried a bounded number of times."""
    for attempt in range(tries):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)


class Archive:
    """An SQLite archive in ``path`` (created if missing; ``readonly=True`` opens an existing one read-only)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        from edgenas.errors import SearchError

        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
                self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()
                self.db.execute("SELECT COUNT(*) FROM meta").fetchone()
                self._columns = {r[1] for r in self.db.execute("PRAGMA table_info(evaluations)")}
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path))
            _set_wal(self.db)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            # Columns added under a write lock: another process opening the same archive now adds none twice.
            self.db.execute("BEGIN IMMEDIATE")
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(evaluations)")}
            for name, (definition, _) in _ADDED_COLUMNS.items():
                if name not in columns:
                    self.db.execute(f"ALTER TABLE evaluations ADD COLUMN {name} {definition}")
            self.db.commit()
            self._columns = columns | set(_ADDED_COLUMNS)
        except sqlite3.DatabaseError as exc:
            raise SearchError(f"{self.path} is not a readable edgenas archive ({exc}); restore it from a copy or "
                              "start a new run in another --run-dir") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        self.set_metas({key: value})

    def set_metas(self, values: dict[str, Any]) -> None:
        """Several settings in one transaction: all of them are stored, or none."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in values.items()])

    def get_meta(self, key: str, default: Any = None) -> Any:
        from edgenas.errors import SearchError

        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else default
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise SearchError(f"{self.path}: its setting '{key}' cannot be read ({exc}); the archive is damaged") from None

    # ----------------------------------------------------------- evaluations
    def add(self, ev: Evaluation) -> Evaluation:
        cur = self.db.execute(
            "INSERT INTO evaluations (arch, status, reason, accuracy, objectives, violations, train_seconds, epochs,"
            " seed, weights, strategy, parent, steps, at_chance, attempts, train_device, created) VALUES (?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.arch, ev.status.value, ev.reason, ev.accuracy, json.dumps(ev.objectives), json.dumps(list(ev.violations)),
             ev.train_seconds, ev.epochs, ev.seed, ev.weights, ev.strategy, ev.parent, ev.steps, int(ev.at_chance),
             int(ev.attempts), ev.train_device, time.time()),
        )
        self.db.commit()
        return Evaluation(**{**ev.__dict__, "id": cur.lastrowid})

    def set_weights(self, evaluation_id: int, weights: str, train_seconds: float, epochs: int) -> None:
        """Record weights trained later for an evaluation (a front member fine-tuned after a supernet search): its
        weights file, and the training time and epochs that went into them."""
        self.db.execute("UPDATE evaluations SET weights = ?, train_seconds = train_seconds + ?, epochs = ? WHERE id = ?",
                        (weights, float(train_seconds), int(epochs), int(evaluation_id)))
        self.db.commit()

    @property
    def _select(self) -> str:
        extra = ", ".join(c if c in self._columns else old for c, (_, old) in _ADDED_COLUMNS.items())
        return f"SELECT {_COLUMNS}, {extra} FROM evaluations"

    def get(self, arch: str) -> Evaluation | None:
        row = self.db.execute(f"{self._select} WHERE arch = ?", (arch,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[Evaluation]:
        return [_row(r) for r in self.db.execute(f"{self._select} ORDER BY id")]

    def totals(self) -> dict[str, float]:
        row = self.db.execute(
            "SELECT COUNT(*), SUM(status IN ('ok', 'failed')), COALESCE(SUM(train_seconds), 0),"
            " COALESCE(SUM(epochs), 0) FROM evaluations"
        ).fetchone()
        return {"evaluations": row[0], "trained": row[1] or 0, "train_seconds": row[2], "epochs": row[3]}

    # ----------------------------------------------------------- hypervolume
    def add_hypervolume(self, hypervolume: float, front_size: int) -> None:
        """Record the front's hypervolume now; a second record at the same number of evaluations replaces the first
        (a resumed run replays its generations without duplicating their rows)."""
        t = self.totals()
        self.db.execute("DELETE FROM hypervolume WHERE evaluations = ?", (t["evaluations"],))
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
        strategy=r[11], parent=r[12], steps=int(r[13] or 0), at_chance=bool(r[14]), attempts=int(r[15] or 1),
        train_device=r[16] or "",
    )
