"""Search spaces: MobileNetV2/ProxylessNAS-style stages of inverted residual blocks.

A :class:`SearchSpace` is data.  It fixes a stem, a list of stages (output
channels, stride of the first block, and the choices of depth, depthwise
kernel and expansion ratio), a head and the input-resolution and
width-multiplier choices.  It comes from a named preset (:func:`list_spaces`,
:func:`get_space`) or a YAML/TOML file with the same fields
(:func:`load_space`).  Its :attr:`~SearchSpace.fingerprint` hashes the
structural definition, so latency tables profiled for another space can be
refused.

The space also owns everything that needs its choices: validating an
:class:`~edgenas.space.genome.Architecture` (errors name the offending gene),
sampling, mutating, listing neighbours, and the integer encoding that pymoo and
the RL controller work on.  The encoding has one integer per *free* gene (a gene
with more than one choice), holding the index of the chosen value; the genes of
blocks beyond a stage's depth are inactive and encode as 0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgenas.errors import ArchitectureError, SpaceError
from edgenas.space.genome import Architecture, Block

__all__ = [
    "Gene",
    "HeadSpec",
    "SearchSpace",
    "StageSpec",
    "StemSpec",
    "get_space",
    "list_spaces",
    "load_space",
    "make_divisible",
]

DEFAULT_KERNELS = (3, 5, 7)
DEFAULT_EXPANSIONS = (3, 4, 6)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (MobileNetV2's rule).

    Never goes below ``divisor`` nor more than 10% below ``value``.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class StemSpec:
    """The first convolution: ``channels`` outputs, ``kernel`` x ``kernel``, ``stride``."""

    channels: int
    kernel: int = 3
    stride: int = 1


@dataclass(frozen=True)
class StageSpec:
    """A stage of inverted residual blocks with the same output channels.

    The first block of the stage applies ``stride``; the others use stride 1
    and a residual connection.  Depth choices are at least 1: a stage always
    carries its stride and channel change, so the input shape of every block
    position depends only on the resolution and width.
    """

    channels: int
    stride: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...] = DEFAULT_KERNELS
    expansions: tuple[int, ...] = DEFAULT_EXPANSIONS

    @property
    def max_depth(self) -> int:
        return max(self.depths)


@dataclass(frozen=True)
class HeadSpec:
    """The final 1x1 convolution before global pooling and the classifier."""

    channels: int


@dataclass(frozen=True)
class Gene:
    """One decision of the genome: its name and its choices, in encoding order."""

    name: str
    choices: tuple[Any, ...]
    stage: int | None = None
    block: int | None = None

    @property
    def is_free(self) -> bool:
        return len(self.choices) > 1


@dataclass(frozen=True)
class SearchSpace:
    """A search space of MBConv networks; see the module docstring."""

    name: str
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    resolutions: tuple[int, ...]
    widths: tuple[float, ...] = (1.0,)
    description: str = field(default="", compare=False)

    #: Networks of this space have weights that network morphisms carry over (LEMONADE's inheritance).
    supports_morphisms = True

    def __post_init__(self) -> None:
        _check_space(self)

    # ----------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (the same fields a space file holds)."""
        return {
            "name": self.name,
            "description": self.description,
            "resolutions": list(self.resolutions),
            "widths": list(self.widths),
            "stem": {"channels": self.stem.channels, "kernel": self.stem.kernel, "stride": self.stem.stride},
            "stages": [
                {
                    "channels": st.channels,
                    "stride": st.stride,
                    "depths": list(st.depths),
                    "kernels": list(st.kernels),
                    "expansions": list(st.expansions),
                }
                for st in self.stages
            ],
            "head": {"channels": self.head.channels},
        }

    @cached_property
    def fingerprint(self) -> str:
        """Stable hash of the structural definition (name and description excluded)."""
        definition = self.to_dict()
        del definition["name"], definition["description"]
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_choices(
        self, resolutions: Sequence[int] | None = None, widths: Sequence[float] | None = None
    ) -> SearchSpace:
        """A copy with other resolution or width choices (e.g. fixed to the data's size)."""
        return replace(
            self,
            resolutions=tuple(resolutions) if resolutions is not None else self.resolutions,
            widths=tuple(float(w) for w in widths) if widths is not None else self.widths,
        )

    # -------------------------------------------------------------------- genes
    @cached_property
    def genes(self) -> tuple[Gene, ...]:
        """Every gene, fixed ones included, in a stable order."""
        genes = [
            Gene("resolution", self.resolutions),
            Gene("width", self.widths),
        ]
        for s, st in enumerate(self.stages):
            genes.append(Gene(f"stage{s}.depth", st.depths, stage=s))
        for s, st in enumerate(self.stages):
            for b in range(st.max_depth):
                genes.append(Gene(f"stage{s}.block{b}.kernel", st.kernels, stage=s, block=b))
                genes.append(
                    Gene(f"stage{s}.block{b}.expansion", st.expansions, stage=s, block=b)
                )
        return tuple(genes)

    @cached_property
    def free_genes(self) -> tuple[Gene, ...]:
        """The genes with more than one choice: the variables of the integer encoding."""
        return tuple(g for g in self.genes if g.is_free)

    @property
    def n_var(self) -> int:
        return len(self.free_genes)

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer bounds ``(xl, xu)`` of the encoding, for pymoo."""
        xu = np.array([len(g.choices) - 1 for g in self.free_genes], dtype=np.int64)
        return np.zeros_like(xu), xu

    @cached_property
    def _free_index(self) -> dict[str, int]:
        return {g.name: i for i, g in enumerate(self.free_genes)}

    def n_architectures(self) -> int:
        """Number of distinct architectures (inactive genes do not count)."""
        total = len(self.resolutions) * len(self.widths)
        for st in self.stages:
            per_block = len(st.kernels) * len(st.expansions)
            total *= sum(per_block**d for d in st.depths)
        return total

    # --------------------------------------------------------------- membership
    def validate(self, arch: Architecture) -> Architecture:
        """Return ``arch`` if it belongs to this space; else raise naming the offending gene."""
        if not isinstance(arch, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(arch).__name__}")
        _check_choice("resolution", arch.resolution, self.resolutions)
        _check_choice("width", arch.width, self.widths)
        if len(arch.stages) != len(self.stages):
            raise ArchitectureError(
                f"architecture {arch} has {len(arch.stages)} stages; space '{self.name}' has {len(self.stages)}"
            )
        for s, (blocks, st) in enumerate(zip(arch.stages, self.stages)):
            _check_choice(f"stage{s}.depth", len(blocks), st.depths)
            for b, block in enumerate(blocks):
                _check_choice(f"stage{s}.block{b}.kernel", block.kernel, st.kernels)
                _check_choice(f"stage{s}.block{b}.expansion", block.expansion, st.expansions)
        return arch

    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ArchitectureError:
            return False
        return True

    def parse(self, text: str) -> Architecture:
        """Parse an architecture string and check that it belongs to this space."""
        return self.validate(Architecture.parse(text))

    # ----------------------------------------------------------------- encoding
    def encode(self, arch: Architecture) -> np.ndarray:
        """Integer vector (one entry per free gene) of a valid architecture."""
        self.validate(arch)
        values = {"resolution": arch.resolution, "width": arch.width}
        for s, blocks in enumerate(arch.stages):
            values[f"stage{s}.depth"] = len(blocks)
            for b, block in enumerate(blocks):
                values[f"stage{s}.block{b}.kernel"] = block.kernel
                values[f"stage{s}.block{b}.expansion"] = block.expansion
        x = np.zeros(self.n_var, dtype=np.int64)
        for i, gene in enumerate(self.free_genes):
            if gene.name in values:
                x[i] = gene.choices.index(values[gene.name])
        return x

    def decode(self, x: Sequence[int] | np.ndarray) -> Architecture:
        """The architecture of an integer vector; raises naming a gene that is out of range."""
        x = np.asarray(x)
        if x.shape != (self.n_var,):
            raise ArchitectureError(
                f"space '{self.name}' encodes architectures as {self.n_var} integers, got shape {x.shape}"
            )
        if not np.all(np.equal(np.mod(x, 1), 0)):
            raise ArchitectureError(f"encoding must hold integers, got {x.tolist()}")
        xi = x.astype(np.int64)
        for i, gene in enumerate(self.free_genes):
            if not 0 <= xi[i] < len(gene.choices):
                raise ArchitectureError(
                    f"gene {gene.name}: index {xi[i]} is out of range 0..{len(gene.choices) - 1}"
                )

        def pick(name: str, choices: tuple[Any, ...]) -> Any:
            i = self._free_index.get(name)
            return choices[xi[i]] if i is not None else choices[0]

        stages = []
        for s, st in enumerate(self.stages):
            depth = pick(f"stage{s}.depth", st.depths)
            stages.append(
                tuple(
                    Block(pick(f"stage{s}.block{b}.kernel", st.kernels), pick(f"stage{s}.block{b}.expansion", st.expansions))
                    for b in range(depth)
                )
            )
        return Architecture(pick("resolution", self.resolutions), pick("width", self.widths), tuple(stages))

    def canonical_encoding(self, X: np.ndarray) -> np.ndarray:
        """Zero the inactive genes of encoded rows, so equal networks have equal rows."""
        X = np.array(X, dtype=np.int64, copy=True)
        for i, gene in enumerate(self.free_genes):
            if gene.block is None:
                continue
            st = self.stages[gene.stage]
            di = self._free_index.get(f"stage{gene.stage}.depth")
            depth = np.asarray(st.depths)[X[:, di]] if di is not None else st.depths[0]
            X[:, i] = np.where(depth > gene.block, X[:, i], 0)
        return X

    # ------------------------------------------------------------------- moves
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture (each gene uniform over its choices)."""
        stages = []
        for st in self.stages:
            depth = st.depths[rng.integers(len(st.depths))]
            stages.append(tuple(self._random_block(st, rng) for _ in range(depth)))
        return Architecture(
            self.resolutions[rng.integers(len(self.resolutions))],
            self.widths[rng.integers(len(self.widths))],
            tuple(stages),
        )

    def moves(self, arch: Architecture) -> list[Move]:
        """Every move of one active gene to another choice, in a fixed order (resolution, width, then per stage:
        depth, then each block's kernel and expansion).  A depth change truncates the stage, or extends it with
        copies of its last block.  :meth:`neighbors` and :func:`edgenas.space.morphisms.morphisms` are both these
        moves."""
        self.validate(arch)
        out: list[Move] = []
        for r in self.resolutions:
            if r != arch.resolution:
                out.append(Move("resolution", -1, -1, arch.resolution, r, replace(arch, resolution=r)))
        for w in self.widths:
            if w != arch.width:
                out.append(Move("width", -1, -1, arch.width, w, replace(arch, width=w)))
        for s, (blocks, st) in enumerate(zip(arch.stages, self.stages)):
            for depth in st.depths:
                if depth == len(blocks):
                    continue
                new_blocks = blocks[:depth] + (blocks[-1],) * max(0, depth - len(blocks))
                out.append(Move("depth", s, min(depth, len(blocks)), len(blocks), depth,
                                with_stage(arch, s, new_blocks)))
            for b, block in enumerate(blocks):
                for k in st.kernels:
                    if k != block.kernel:
                        out.append(Move("kernel", s, b, block.kernel, k,
                                        with_stage(arch, s, blocks[:b] + (Block(k, block.expansion),) + blocks[b + 1 :])))
                for e in st.expansions:
                    if e != block.expansion:
                        out.append(Move("expansion", s, b, block.expansion, e,
                                        with_stage(arch, s, blocks[:b] + (Block(block.kernel, e),) + blocks[b + 1 :])))
        return out

    def neighbors(self, arch: Architecture) -> list[Architecture]:
        """Every architecture one move away (:meth:`moves`)."""
        return [m.child for m in self.moves(arch)]

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """One random move: a neighbour chosen uniformly (``arch`` itself if it has none)."""
        options = self.neighbors(arch)
        if not options:
            return arch
        return options[rng.integers(len(options))]

    @staticmethod
    def _random_block(st: StageSpec, rng: np.random.Generator) -> Block:
        return Block(st.kernels[rng.integers(len(st.kernels))], st.expansions[rng.integers(len(st.expansions))])

    # ----------------------------------------------------------------- geometry
    def channels(self, width: float) -> tuple[int, tuple[int, ...], int]:
        """Stem, per-stage and head output channels at a width multiplier."""
        return (
            make_divisible(self.stem.channels * width),
            tuple(make_divisible(st.channels * width) for st in self.stages),
            make_divisible(self.head.channels * width),
        )

    def describe(self) -> Iterator[str]:
        """Human-readable lines describing the space (used by ``edgenas spaces show``)."""
        yield f"space       {self.name}  (fingerprint {self.fingerprint})"
        if self.description:
            yield f"            {self.description}"
        yield f"resolutions {', '.join(str(r) for r in self.resolutions)}"
        yield f"widths      {', '.join(f'{w:g}' for w in self.widths)}"
        yield f"stem        conv {self.stem.kernel}x{self.stem.kernel} stride {self.stem.stride} -> {self.stem.channels} ch"
        for s, st in enumerate(self.stages):
            yield (
                f"stage {s}     {st.channels:>4} ch  stride {st.stride}  depth {_fmt(st.depths)}  "
                f"kernel {_fmt(st.kernels)}  expansion {_fmt(st.expansions)}"
            )
        yield f"head        conv 1x1 -> {self.head.channels} ch, global average pool, linear classifier"
        yield f"genes       {len(self.free_genes)} free of {len(self.genes)}"
        yield f"size        {self.n_architectures():.3e} architectures"


def _fmt(values: Sequence[Any]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


@dataclass(frozen=True)
class Move:
    """One gene of an architecture moved to another choice: ``gene`` is resolution, width, depth, kernel or
    expansion; ``stage``/``block`` say where (-1 for the global genes; for depth, the first block added or
    removed); ``old`` and ``new`` are the gene's values; ``child`` is the result."""

    gene: str
    stage: int
    block: int
    old: Any
    new: Any
    child: Architecture


def with_stage(arch: Architecture, s: int, blocks: tuple[Block, ...]) -> Architecture:
    """``arch`` with stage ``s`` made of ``blocks``."""
    return replace(arch, stages=arch.stages[:s] + (tuple(blocks),) + arch.stages[s + 1 :])


def _check_choice(gene: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ArchitectureError(
            f"gene {gene}: {value!r} is not a choice of this space (choices: {', '.join(str(c) for c in choices)})"
        )


# --------------------------------------------------------------------- checks
def _positive_ints(where: str, values: Any, *, odd: bool = False) -> tuple[int, ...]:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise SpaceError(f"{where}: expected a non-empty list of integers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpaceError(f"{where}: expected positive integers, got {v!r}")
        if odd and v % 2 == 0:
            raise SpaceError(f"{where}: kernel sizes must be odd, got {v}")
        out.append(v)
    if len(set(out)) != len(out):
        raise SpaceError(f"{where}: choices must be distinct, got {out}")
    return tuple(out)


def _positive_int(where: str, value: Any, *, odd: bool = False) -> int:
    """One positive integer (a list is refused: a stem or stage has one channel count, one stride)."""
    if isinstance(value, (list, tuple)):
        raise SpaceError(f"{where}: expected one positive integer, got a list {list(value)!r}")
    return _positive_ints(where, [value], odd=odd)[0]


#: The largest input resolution a space may have (larger inputs are not edge workloads and exhaust memory).
MAX_RESOLUTION = 4096


def _check_space(space: SearchSpace) -> None:
    where = f"space '{space.name}'"
    if not space.name or not isinstance(space.name, str):
        raise SpaceError("a search space needs a non-empty 'name'")
    object.__setattr__(space, "resolutions", _positive_ints(f"{where}: resolutions", space.resolutions))
    if max(space.resolutions) > MAX_RESOLUTION:
        raise SpaceError(f"{where}: resolutions must be at most {MAX_RESOLUTION} pixels, got {max(space.resolutions)}")
    widths = space.widths if isinstance(space.widths, (list, tuple)) else [space.widths]
    if not widths or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 4 for w in widths):
        raise SpaceError(f"{where}: widths must be numbers in (0, 4], got {space.widths!r}")
    object.__setattr__(space, "widths", tuple(float(w) for w in widths))
    if len(set(space.widths)) != len(space.widths):
        raise SpaceError(f"{where}: widths must be distinct, got {list(space.widths)}")
    _positive_int(f"{where}: stem.channels", space.stem.channels)
    _positive_int(f"{where}: stem.kernel", space.stem.kernel, odd=True)
    _positive_int(f"{where}: stem.stride", space.stem.stride)
    _positive_int(f"{where}: head.channels", space.head.channels)
    if not space.stages:
        raise SpaceError(f"{where}: needs at least one stage")
    stages = []
    for s, st in enumerate(space.stages):
        w = f"{where}: stages[{s}]"
        _positive_int(f"{w}.channels", st.channels)
        _positive_int(f"{w}.stride", st.stride)
        stages.append(
            replace(
                st,
                depths=_positive_ints(f"{w}.depths", st.depths),
                kernels=_positive_ints(f"{w}.kernels", st.kernels, odd=True),
                expansions=_positive_ints(f"{w}.expansions", st.expansions),
            )
        )
    object.__setattr__(space, "stages", tuple(stages))


# -------------------------------------------------------------------- loading
_SPACE_KEYS = {"name", "description", "resolutions", "widths", "stem", "stages", "head"}
_STEM_KEYS = {"channels", "kernel", "stride"}
_STAGE_KEYS = {"channels", "stride", "depths", "kernels", "expansions"}
_HEAD_KEYS = {"channels"}


def _only_keys(where: str, data: Any, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(allowed))}")
    missing = required - set(data)
    if missing:
        raise SpaceError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
    return data


def space_from_dict(data: Any, source: str = "space definition") -> SearchSpace:
    """Build a space from plain data (the parsed YAML/TOML file); errors name the field."""
    data = _only_keys(source, data, _SPACE_KEYS, {"name", "resolutions", "stem", "stages", "head"})
    stem = _only_keys(f"{source}: stem", data["stem"], _STEM_KEYS, {"channels"})
    head = _only_keys(f"{source}: head", data["head"], _HEAD_KEYS, {"channels"})
    if not isinstance(data["stages"], list):
        raise SpaceError(f"{source}: stages must be a list")
    stages = []
    for s, raw in enumerate(data["stages"]):
        st = _only_keys(f"{source}: stages[{s}]", raw, _STAGE_KEYS, {"channels", "stride", "depths"})
        stages.append(
            StageSpec(
                channels=st["channels"],
                stride=st["stride"],
                depths=st["depths"],
                kernels=st.get("kernels", DEFAULT_KERNELS),
                expansions=st.get("expansions", DEFAULT_EXPANSIONS),
            )
        )
    try:
        return SearchSpace(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            stem=StemSpec(**stem),
            stages=tuple(stages),
            head=HeadSpec(**head),
            resolutions=data["resolutions"],
            widths=data.get("widths", (1.0,)),
        )
    except SpaceError as exc:
        raise SpaceError(f"{source}: {exc}") from None


def load_space(path: str | Path) -> SearchSpace:
    """Load a space from a ``.yaml``/``.yml`` or ``.toml`` file."""
    from edgenas.files import read_structured

    data = read_structured(path, "space file", SpaceError, (".yaml", ".yml", ".toml"))
    return space_from_dict(data, source=f"space file {path}")


# -------------------------------------------------------------------- presets
def _stage(channels: int, stride: int, depths: Sequence[int], **kw: Any) -> StageSpec:
    return StageSpec(channels, stride, tuple(depths), **kw)


_PRESETS: dict[str, SearchSpace] = {
    space.name: space
    for space in (
        SearchSpace(
            name="small",
            description="small inputs (8x8 to 32x32, grayscale or RGB): digits, CIFAR-size images",
            stem=StemSpec(16, 3, 1),
            stages=(
                _stage(16, 1, (1, 2)),
                _stage(24, 2, (1, 2, 3)),
                _stage(40, 2, (1, 2, 3)),
                _stage(80, 2, (1, 2, 3)),
                _stage(96, 1, (1, 2, 3)),
            ),
            head=HeadSpec(256),
            resolutions=(32,),
            widths=(0.5, 0.75, 1.0),
        ),
        SearchSpace(
            name="imagenet",
            description="ImageNet-size inputs (224x224 RGB), ProxylessNAS/MobileNetV2 layout",
            stem=StemSpec(32, 3, 2),
            stages=(
                _stage(16, 1, (1,), kernels=(3,), expansions=(1,)),
                _stage(24, 2, (2, 3, 4)),
                _stage(40, 2, (2, 3, 4)),
                _stage(80, 2, (2, 3, 4)),
                _stage(96, 1, (2, 3, 4)),
                _stage(192, 2, (2, 3, 4)),
                _stage(320, 1, (1,)),
            ),
            head=HeadSpec(1280),
            resolutions=(224,),
        ),
        SearchSpace(
            name="tiny",
            description="two small stages with resolution and width choices, for fast tests and demos",
            stem=StemSpec(16, 3, 1),
            stages=(_stage(16, 1, (1, 2)), _stage(24, 2, (1, 2))),
            head=HeadSpec(32),
            resolutions=(8, 16),
            widths=(0.5, 1.0),
        ),
    )
}


def list_spaces() -> list[str]:
    """Names of the preset spaces."""
    return sorted(_PRESETS)


def register_space(space: SearchSpace, *, replace: bool = False) -> SearchSpace:
    """Make ``space`` a preset under its name (``--space NAME``); a name already taken is refused unless
    ``replace``."""
    if space.name in _PRESETS and not replace:
        raise SpaceError(f"search space '{space.name}' is a preset already (pass replace=True to replace it)")
    _PRESETS[space.name] = space
    return space


def get_space(name_or_path: str | Path) -> SearchSpace:
    """A preset by name, or a space file by path (``.yaml``, ``.yml``, ``.toml``)."""
    key = str(name_or_path)
    if key in _PRESETS:
        return _PRESETS[key]
    if Path(key).suffix.lower() in (".yaml", ".yml", ".toml") or Path(key).exists():
        return load_space(key)
    raise SpaceError(f"unknown search space '{key}'; presets: {', '.join(list_spaces())}, or give a .yaml/.toml file")

