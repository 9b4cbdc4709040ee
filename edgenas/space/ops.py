"""Op decomposition: the typed keys a network is made of.

A network of a search space is a chain of ops: the stem convolution, one
inverted-residual block per active block of each stage, the head convolution
and the classifier (global average pool and linear layer).  Each op is
identified by an :class:`OpKey` that holds everything its cost depends on (op
type, input height and width, input and output channels, kernel, expansion,
stride, residual).  This is the one key schema shared by the model builder, the
analytic cost model, profiling and latency prediction.

String form (stable; it is the key of latency tables)::

    mbconv_16x16_c24-40_k5_e6_s2_nores

:func:`decompose` gives the ops of one architecture; :class:`OpIndex`
enumerates every distinct op a space can produce (the profiling workload) and
maps whole batches of encoded architectures to op ids, so that any per-op
quantity (parameters, latency, energy) sums over many architectures in a few
vectorized numpy operations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgenas.errors import ArchitectureError
from edgenas.space.genome import Architecture, Block
from edgenas.space.mbconv import SearchSpace

__all__ = ["OpIndex", "OpKey", "OpType", "decompose", "space_ops"]

_CHUNK = 32768  # rows per chunk in OpIndex.reduce


class OpType(str, Enum):
    STEM = "stem"
    MBCONV = "mbconv"
    HEAD = "head"
    CLASSIFIER = "classifier"


_KEY_RE = re.compile(r"([a-z]+)_(\d+)x(\d+)_c(\d+)-(\d+)_k(\d+)_e(\d+)_s(\d+)_(res|nores)")


@dataclass(frozen=True, order=True)
class OpKey:
    """One op of a network, with its input shape; see the module docstring.

    For the classifier, ``cout`` is the number of classes; its input is the
    head's feature map, which it pools globally.
    """

    op: OpType
    in_h: int
    in_w: int
    cin: int
    cout: int
    kernel: int = 1
    expansion: int = 1
    stride: int = 1
    residual: bool = False

    @property
    def out_h(self) -> int:
        return 1 if self.op is OpType.CLASSIFIER else -(-self.in_h // self.stride)

    @property
    def out_w(self) -> int:
        return 1 if self.op is OpType.CLASSIFIER else -(-self.in_w // self.stride)

    @property
    def hidden(self) -> int:
        """Channels inside an MBConv block (after the expansion convolution)."""
        return self.cin * self.expansion

    def __str__(self) -> str:
        return (
            f"{self.op.value}_{self.in_h}x{self.in_w}_c{self.cin}-{self.cout}"
            f"_k{self.kernel}_e{self.expansion}_s{self.stride}_{'res' if self.residual else 'nores'}"
        )

    @classmethod
    def parse(cls, text: str) -> OpKey:
        m = _KEY_RE.fullmatch(text.strip())
        if m is None or m.group(1) not in {t.value for t in OpType}:
            raise ArchitectureError(
                f"cannot parse op key {text!r}: expected e.g. 'mbconv_16x16_c24-40_k5_e6_s2_nores'"
            )
        op, h, w, cin, cout, k, e, s, res = m.groups()
        return cls(OpType(op), int(h), int(w), int(cin), int(cout), int(k), int(e), int(s), res == "res")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class _Geometry:
    """Input shapes of every op position at one (resolution, width)."""

    stem: OpKey
    stage_in: tuple[tuple[int, int, int], ...]  # (h, w, cin) entering each stage
    stage_out: tuple[tuple[int, int, int], ...]  # (h, w, cout) leaving each stage
    head: OpKey
    classifier: OpKey

    def block(self, space: SearchSpace, stage: int, position: int, block: Block) -> OpKey:
        """The key of the block at ``position`` of ``stage``."""
        if position == 0:
            h, w, cin = self.stage_in[stage]
            stride = space.stages[stage].stride
        else:
            h, w, cin = self.stage_out[stage]
            stride = 1
        cout = self.stage_out[stage][2]
        return OpKey(
            OpType.MBCONV, h, w, cin, cout, block.kernel, block.expansion, stride, stride == 1 and cin == cout
        )


def _geometry(space: SearchSpace, resolution: int, width: float, in_channels: int, num_classes: int) -> _Geometry:
    stem_c, stage_c, head_c = space.channels(width)
    stem = OpKey(OpType.STEM, resolution, resolution, in_channels, stem_c, space.stem.kernel, 1, space.stem.stride)
    h = w = _ceil_div(resolution, space.stem.stride)
    c = stem_c
    stage_in, stage_out = [], []
    for st, cout in zip(space.stages, stage_c):
        stage_in.append((h, w, c))
        h, w, c = _ceil_div(h, st.stride), _ceil_div(w, st.stride), cout
        stage_out.append((h, w, c))
    head = OpKey(OpType.HEAD, h, w, c, head_c)
    classifier = OpKey(OpType.CLASSIFIER, h, w, head_c, num_classes)
    return _Geometry(stem, tuple(stage_in), tuple(stage_out), head, classifier)


def _check_task(in_channels: int, num_classes: int) -> None:
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArchitectureError(f"{name} must be a positive integer, got {value!r}")


def decompose(space: SearchSpace, arch: Architecture, in_channels: int, num_classes: int) -> list[OpKey]:
    """The ops of ``arch`` in execution order: stem, blocks, head, classifier."""
    space.validate(arch)
    _check_task(in_channels, num_classes)
    geo = _geometry(space, arch.resolution, arch.width, in_channels, num_classes)
    ops = [geo.stem]
    for s, blocks in enumerate(arch.stages):
        ops.extend(geo.block(space, s, b, block) for b, block in enumerate(blocks))
    ops += [geo.head, geo.classifier]
    return ops


class OpIndex:
    """Every distinct op of a space, and a vectorized map from encodings to op ids.

    ``keys`` lists the distinct :class:`OpKey` s (sorted; the profiling
    workload).  :meth:`reduce` sums or maximises per-op values over the ops of
    each row of an encoded batch ``X`` (``N x space.n_var`` integers, as made
    by :meth:`SearchSpace.encode`) without building any architecture object.
    """

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int) -> None:
        _check_task(in_channels, num_classes)
        self.space = space
        self.in_channels = in_channels
        self.num_classes = num_classes
        n_r, n_w = len(space.resolutions), len(space.widths)
        ids: dict[OpKey, int] = {}

        def op_id(key: OpKey) -> int:
            return ids.setdefault(key, len(ids))

        fixed = {name: np.zeros((n_r, n_w), dtype=np.int64) for name in ("stem", "head", "classifier")}
        slots = [
            (s, b, np.zeros((n_r, n_w, len(st.kernels), len(st.expansions)), dtype=np.int64))
            for s, st in enumerate(space.stages)
            for b in range(st.max_depth)
        ]
        for ri, res in enumerate(space.resolutions):
            for wi, width in enumerate(space.widths):
                geo = _geometry(space, res, width, in_channels, num_classes)
                fixed["stem"][ri, wi] = op_id(geo.stem)
                fixed["head"][ri, wi] = op_id(geo.head)
                fixed["classifier"][ri, wi] = op_id(geo.classifier)
                for s, b, table in slots:
                    st = space.stages[s]
                    for ki, k in enumerate(st.kernels):
                        for ei, e in enumerate(st.expansions):
                            table[ri, wi, ki, ei] = op_id(geo.block(space, s, b, Block(k, e)))
        # Renumber so that ids follow the sorted key order (stable across runs and versions).
        self.keys: list[OpKey] = sorted(ids)
        n_ops = len(self.keys)
        remap = np.empty(n_ops, dtype=np.intp)
        for new, key in enumerate(self.keys):
            remap[ids[key]] = new
        self._fixed = [remap[t].reshape(-1) for t in fixed.values()]
        # Each slot's table gets a leading "active" axis; inactive blocks map to the
        # sentinel id n_ops, whose values are zero, so no masking is needed later.
        self._slots = []
        for s, b, t in slots:
            table = np.stack([np.full(t.shape, n_ops, dtype=np.intp), remap[t]])
            self._slots.append((s, b, table.reshape(-1), t.shape[2], t.shape[3]))
        self._id = {key: i for i, key in enumerate(self.keys)}
        self._col = {g.name: i for i, g in enumerate(space.free_genes)}

    def __len__(self) -> int:
        return len(self.keys)

    def id_of(self, key: OpKey) -> int:
        return self._id[key]

    def reduce(
        self,
        X: np.ndarray,
        sums: Mapping[str, np.ndarray] | None = None,
        maxes: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-row sums of ``sums[name][op_id]`` and maxima of ``maxes[name][op_id]``.

        Every value array is indexed by op id (aligned with :attr:`keys`);
        maxima assume non-negative values.  Rows must be in the bounds of
        :attr:`SearchSpace.bounds`.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.space.n_var:
            raise ArchitectureError(
                f"expected an N x {self.space.n_var} integer array for space '{self.space.name}', got shape {X.shape}"
            )
        # Value arrays get a trailing zero for the sentinel op id of inactive blocks.
        sums = {name: np.append(np.asarray(v), 0) for name, v in (sums or {}).items()}
        maxes = {name: np.append(np.asarray(v), 0) for name, v in (maxes or {}).items()}
        n = X.shape[0]
        out = {name: np.empty(n, dtype=v.dtype) for name, v in {**sums, **maxes}.items()}
        # Chunks keep the transposed genes and every intermediate in cache (about 3x faster).
        for start in range(0, n, _CHUNK):
            part = self._reduce_chunk(X[start : start + _CHUNK], sums, maxes)
            for name, values in part.items():
                out[name][start : start + _CHUNK] = values
        return out

    def _reduce_chunk(
        self, X: np.ndarray, sums: dict[str, np.ndarray], maxes: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        cols = np.ascontiguousarray(X.T, dtype=np.intp)  # one contiguous row per gene
        xl, xu = self.space.bounds
        if cols.size and (np.any(cols.min(axis=1) < xl) or np.any(cols.max(axis=1) > xu)):
            bad = int(np.argmax((cols.min(axis=1) < xl) | (cols.max(axis=1) > xu)))
            raise ArchitectureError(f"gene {self.space.free_genes[bad].name}: index out of range 0..{xu[bad]}")
        n = X.shape[0]
        n_rw = len(self.space.resolutions) * len(self.space.widths)

        def column(name: str) -> np.ndarray | int:
            i = self._col.get(name)
            return 0 if i is None else cols[i]

        rw = np.broadcast_to(column("resolution") * len(self.space.widths) + column("width"), (n,))
        fixed = [np.take(ids, rw) for ids in self._fixed]
        out = {name: np.take(v, fixed[0]) + np.take(v, fixed[1]) + np.take(v, fixed[2]) for name, v in sums.items()}
        for name, v in maxes.items():
            out[name] = np.maximum(np.maximum(np.take(v, fixed[0]), np.take(v, fixed[1])), np.take(v, fixed[2]))
        for s, b, ids, n_k, n_e in self._slots:
            st = self.space.stages[s]
            idx = (rw * n_k + column(f"stage{s}.block{b}.kernel")) * n_e + column(f"stage{s}.block{b}.expansion")
            if b < min(st.depths):
                idx = idx + n_rw * n_k * n_e  # always active
            else:
                active = np.take(np.asarray(st.depths), column(f"stage{s}.depth")) > b
                idx = idx + active * (n_rw * n_k * n_e)
            op = np.take(ids, idx)
            for name, v in sums.items():
                out[name] += np.take(v, op)
            for name, v in maxes.items():
                np.maximum(out[name], np.take(v, op), out=out[name])
        return out


def space_ops(space: SearchSpace, in_channels: int, num_classes: int) -> list[OpKey]:
    """Every distinct op the space can produce for this task, sorted."""
    return OpIndex(space, in_channels, num_classes).keys
