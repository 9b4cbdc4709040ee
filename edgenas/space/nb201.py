"""The NAS-Bench-201 cell space and its tabular hardware benchmark (accuracy and per-device latency of every cell).

A second kind of search space beside the MBConv chain (:mod:`edgenas.space.mbconv`),
behind the same protocol (:class:`edgenas.space.protocol.Space`): a cell of
4 nodes whose 6 edges each carry one of 5 operations, 15,625 cells in all.
Its string form is exactly NAS-Bench-201's::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

(groups separated by ``+`` are nodes 1, 2, 3; ``op~j`` is the op on the edge
from node j).  The genome is the 6 op indices in that order.

The benchmark file (``nb201_hw.json.gz``, shipped; see its README for
provenance and licences) holds every cell's test accuracy on three datasets
and its latency on 22 device setups, so a search on it is a *tabular*
problem: an evaluation is a lookup, the true Pareto front is known, and a
strategy is scored as a share of the true front's hypervolume.  Any file of
the same layout can stand in for it (``--problem-data``): one with its own
``archs`` (any order), ``accuracy`` and ``latency_ms``, or a device file with
only ``latency_ms`` (15,625 values per device in the shipped file's index
order, or with its own ``archs``), whose accuracies then come from the
shipped file.

A problem is named ``nb201:DATASET:DEVICE`` (``edgenas problems list``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgenas.errors import ArchitectureError, SearchError
from edgenas.space.mbconv import Gene

__all__ = [
    "EDGES", "OPS", "Cell", "CellSpace", "TabularData", "TabularProblem", "default_data_path", "load_problem",
    "path_features",
]

#: The five operations of an edge, in genome order (the data file's ``ops``).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges as (to node, from node), in genome and string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: The four input-to-output paths through the cell, as edge indices (for the path encoding).
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
N_CELLS = len(OPS) ** len(EDGES)
#: A benchmark file larger than this once decompressed is refused (the shipped one is about 5 MB).
MAX_DATA_BYTES = 256 * 2**20


@dataclass(frozen=True, order=True)
class Cell:
    """A NAS-Bench-201 cell: the op index of each of the 6 edges (see :data:`EDGES`)."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = tuple(int(o) for o in self.ops)
        if len(ops) != len(EDGES) or not all(0 <= o < len(OPS) for o in ops):
            raise ArchitectureError(f"a cell has {len(EDGES)} edges with op indices 0..{len(OPS) - 1}, got {ops}")
        object.__setattr__(self, "ops", ops)

    def __str__(self) -> str:
        nodes = []
        for node in (1, 2, 3):
            edges = [f"{OPS[o]}~{src}" for (to, src), o in zip(EDGES, self.ops) if to == node]
            nodes.append("|" + "|".join(edges) + "|")
        return "+".join(nodes)

    @classmethod
    def parse(cls, text: str) -> Cell:
        example = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
        groups = str(text).strip().split("+")
        if len(groups) != 3:
            raise ArchitectureError(f"cannot parse cell {text!r}: expected 3 nodes separated by '+', e.g. {example}")
        ops = []
        for node, group in enumerate(groups, start=1):
            edges = [e for e in group.strip().strip("|").split("|")]
            if len(edges) != node:
                raise ArchitectureError(f"cannot parse cell {text!r}: node {node} needs {node} edge(s), got "
                                        f"{len(edges)} (e.g. {example})")
            for src, edge in enumerate(edges):
                op, _, origin = edge.partition("~")
                if op not in OPS or origin != str(src):
                    raise ArchitectureError(f"cannot parse cell {text!r}: edge {edge!r} of node {node} should be "
                                            f"'<op>~{src}' with op one of {', '.join(OPS)}")
                ops.append(OPS.index(op))
        return cls(tuple(ops))


def path_features(X: np.ndarray) -> np.ndarray:
    """Features of encoded cells for accuracy predictors: one-hot ops, op counts, and the path encoding of BANANAS
    (White et al., 2021: which op sequence each of the 4 input-output paths carries, a path cut by ``none`` left
    out)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.int64))
    n = len(X)
    parts = [np.eye(len(OPS))[X].reshape(n, -1), np.stack([(X == k).sum(1) for k in range(len(OPS))], 1)]
    for path in PATHS:
        code = np.zeros(n, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for edge in path:
            code = code * len(OPS) + X[:, edge]
            alive &= X[:, edge] != 0
        onehot = np.zeros((n, len(OPS) ** len(path)))
        onehot[np.arange(n), code] = alive
        parts.append(onehot)
    return np.hstack(parts).astype(float)


class CellSpace:
    """The NAS-Bench-201 cell space behind the search-space protocol; see the module docstring.

    It has no weights to inherit: LEMONADE runs here with plain mutations.
    """

    name = "nb201"
    description = "NAS-Bench-201 cells: 6 edges x 5 ops (15,625 cells), tabular accuracy and latency"
    supports_morphisms = False

    @cached_property
    def free_genes(self) -> tuple[Gene, ...]:
        return tuple(Gene(f"edge{to}<-{src}", OPS) for to, src in EDGES)

    @property
    def n_var(self) -> int:
        return len(EDGES)

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(EDGES), dtype=np.int64), np.full(len(EDGES), len(OPS) - 1, dtype=np.int64)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "nb201-cell", "ops": list(OPS), "edges": [list(e) for e in EDGES]}

    def n_architectures(self) -> int:
        return N_CELLS

    def describe(self) -> Iterator[str]:
        yield f"space {self.name}: {self.description}"
        yield f"  edges {', '.join(f'{src}->{to}' for to, src in EDGES)}; ops {', '.join(OPS)}"

    # ------------------------------------------------------------- membership
    def validate(self, arch: Cell) -> Cell:
        if not isinstance(arch, Cell):
            raise ArchitectureError(f"expected a NAS-Bench-201 cell, got {type(arch).__name__}")
        return arch

    def contains(self, arch: Any) -> bool:
        return isinstance(arch, Cell)

    def parse(self, text: str) -> Cell:
        return Cell.parse(text)

    # --------------------------------------------------------------- encoding
    def encode(self, arch: Cell) -> np.ndarray:
        return np.asarray(self.validate(arch).ops, dtype=np.int64)

    def decode(self, x: Sequence[int] | np.ndarray) -> Cell:
        x = np.asarray(x)
        if x.shape != (len(EDGES),) or not np.all(np.equal(np.mod(x, 1), 0)):
            raise ArchitectureError(f"space '{self.name}' encodes cells as {len(EDGES)} integers, got {x.tolist()}")
        return Cell(tuple(int(v) for v in x))

    def canonical_encoding(self, X: np.ndarray) -> np.ndarray:
        """Every encoding is already canonical (no inactive genes)."""
        return np.array(X, dtype=np.int64, copy=True)

    def codes(self, X: np.ndarray) -> np.ndarray:
        """Each encoded row as one integer in 0..15624 (base-5 digits in edge order)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        return X @ (len(OPS) ** np.arange(len(EDGES)))

    def features(self, X: np.ndarray) -> np.ndarray:
        return path_features(X)

    # ------------------------------------------------------------------ moves
    def sample(self, rng: np.random.Generator) -> Cell:
        return Cell(tuple(int(v) for v in rng.integers(0, len(OPS), size=len(EDGES))))

    def neighbors(self, arch: Cell) -> list[Cell]:
        """The 24 cells that differ from ``arch`` on one edge."""
        ops = self.validate(arch).ops
        return [Cell(ops[:e] + (o,) + ops[e + 1:]) for e in range(len(EDGES)) for o in range(len(OPS)) if o != ops[e]]

    def mutate(self, arch: Cell, rng: np.random.Generator) -> Cell:
        options = self.neighbors(arch)
        return options[int(rng.integers(len(options)))]


# ------------------------------------------------------------------- the data
def default_data_path() -> Path:
    """The shipped benchmark file (``benchmarks/data/nb201_hw.json.gz`` in a checkout, package data when installed)."""
    from edgenas.resources import shipped_dir

    return shipped_dir("benchmark_data") / "nb201_hw.json.gz"


def _read_json(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            raw = f.read(MAX_DATA_BYTES + 1)
    except FileNotFoundError:
        raise SearchError(f"benchmark data file {path} does not exist; give an existing --problem-data file") from None
    except (OSError, EOFError) as exc:
        raise SearchError(f"benchmark data file {path} cannot be read ({exc}); give a JSON or gzip-compressed JSON "
                          "file in the nb201_hw layout") from None
    if len(raw) > MAX_DATA_BYTES:
        raise SearchError(f"benchmark data file {path} is larger than {MAX_DATA_BYTES >> 20} MiB once decompressed; "
                          "it is not an nb201_hw file")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SearchError(f"benchmark data file {path} is not valid JSON ({exc}); give a file in the nb201_hw "
                          "layout (see benchmarks/data/README.md)") from None
    if not isinstance(data, dict):
        raise SearchError(f"benchmark data file {path} holds a JSON {type(data).__name__}, not an object with "
                          "'latency_ms' (and 'archs', 'accuracy')")
    return data


def _values(path: Path, what: str, values: Any, n: int, latency: bool) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise SearchError(f"{path}: {what} must be a list of {n} numbers (one per cell), got {got}")
    try:
        array = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise SearchError(f"{path}: {what} holds values that are not numbers") from None
    bad = ~np.isfinite(array) | ((array < 0) if latency else (array < 0) | (array > 100))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rule = "finite and not negative" if latency else "finite percentages in 0..100"
        raise SearchError(f"{path}: {what} must be {rule}; value {i} is {values[i]!r}")
    return array


@dataclass(frozen=True)
class TabularData:
    """A benchmark file, checked: per cell (in the file's ``archs`` order) accuracy (%) and latency (ms)."""

    path: Path
    archs: tuple[str, ...]
    accuracy: dict[str, np.ndarray]
    latency_ms: dict[str, np.ndarray]
    sha256: str

    @cached_property
    def index_of_code(self) -> np.ndarray:
        """Row of each cell code (see :meth:`CellSpace.codes`) in this file's order."""
        space = CellSpace()
        codes = space.codes(np.stack([space.encode(Cell.parse(a)) for a in self.archs]))
        out = np.empty(N_CELLS, dtype=np.int64)
        out[codes] = np.arange(len(codes))
        return out

    @classmethod
    def load(cls, path: str | Path | None = None) -> TabularData:
        """The shipped file (``path`` None), or any file of its layout (see the module docstring)."""
        shipped = default_data_path()
        path = Path(path) if path is not None else shipped
        raw = _read_json(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        base = None
        if "archs" not in raw or "accuracy" not in raw:
            if path.resolve() == shipped.resolve():
                raise SearchError(f"{path}: the shipped benchmark file lacks 'archs' or 'accuracy'; reinstall edgenas")
            base = cls.load(None)
        archs = raw.get("archs", base.archs if base else None)
        if not isinstance(archs, list | tuple) or len(archs) != N_CELLS or len(set(archs)) != N_CELLS:
            raise SearchError(f"{path}: 'archs' must list the {N_CELLS:,} distinct NAS-Bench-201 cell strings")
        try:
            parsed = {str(Cell.parse(a)) for a in archs}
        except ArchitectureError as exc:
            raise SearchError(f"{path}: {exc}") from None
        if len(parsed) != N_CELLS:
            raise SearchError(f"{path}: 'archs' must list every one of the {N_CELLS:,} cells once")
        archs = tuple(str(Cell.parse(a)) for a in archs)
        latency = raw.get("latency_ms")
        if not isinstance(latency, dict) or not latency:
            raise SearchError(f"{path}: 'latency_ms' must map device names to {N_CELLS:,} latencies each")
        latency_ms = {str(k): _values(path, f"latency_ms[{k!r}]", v, N_CELLS, True) for k, v in latency.items()}
        if "accuracy" in raw:
            accuracy_raw = raw["accuracy"]
            if not isinstance(accuracy_raw, dict) or not accuracy_raw:
                raise SearchError(f"{path}: 'accuracy' must map dataset names to {N_CELLS:,} accuracies (%) each")
            accuracy = {str(k): _values(path, f"accuracy[{k!r}]", v, N_CELLS, False) for k, v in accuracy_raw.items()}
        else:  # accuracies of the shipped file, matched by cell string
            order = base.index_of_code[CellSpace().codes(np.stack([Cell.parse(a).ops for a in archs]))]
            accuracy = {k: v[order] for k, v in base.accuracy.items()}
        return cls(path, archs, accuracy, latency_ms, digest)


@dataclass(frozen=True)
class TabularProblem:
    """One (dataset, device) pair of a benchmark file: the error and latency of every cell."""

    dataset: str
    device: str
    data: TabularData

    @property
    def name(self) -> str:
        return f"nb201:{self.dataset}:{self.device}"

    def rows(self, X: np.ndarray) -> np.ndarray:
        return self.data.index_of_code[CellSpace().codes(X)]

    def error_pct(self, X: np.ndarray) -> np.ndarray:
        return 100.0 - self.data.accuracy[self.dataset][self.rows(X)]

    def latency_ms(self, X: np.ndarray) -> np.ndarray:
        return self.data.latency_ms[self.device][self.rows(X)]

    def objectives(self) -> np.ndarray:
        """N x 2 (error %, latency ms) of every cell, in the file's order."""
        return np.stack([100.0 - self.data.accuracy[self.dataset], self.data.latency_ms[self.device]], axis=1)


def load_problem(spec: str, data_path: str | Path | None = None) -> TabularProblem:
    """``nb201:DATASET:DEVICE`` on the shipped file or ``data_path``; an unknown name lists the valid ones."""
    parts = str(spec).split(":")
    if len(parts) != 3 or parts[0] != "nb201" or not parts[1] or not parts[2]:
        raise SearchError(f"--problem must be nb201:DATASET:DEVICE, e.g. nb201:cifar100:pixel3, got {spec!r} "
                          "(edgenas problems list shows them)")
    data = TabularData.load(data_path)
    _, dataset, device = parts
    if dataset not in data.accuracy:
        raise SearchError(f"unknown dataset {dataset!r} in {data.path}; choose from {', '.join(sorted(data.accuracy))}")
    if device not in data.latency_ms:
        raise SearchError(f"unknown device {device!r} in {data.path}; choose from {', '.join(sorted(data.latency_ms))}")
    return TabularProblem(dataset, device, data)
