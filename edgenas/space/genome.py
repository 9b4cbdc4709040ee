"""The architecture genome: an immutable, hashable value with a compact string form.

An :class:`Architecture` is pure data: the input resolution, the width
multiplier, and per stage the tuple of its active blocks, each a
:class:`Block` (depthwise kernel size, expansion ratio).  The depth of a stage is
the number of its blocks.  It knows nothing of the search space it came from;
``SearchSpace.validate`` checks membership.

The string form, used in logs, the CLI, archives and tables alike::

    r32-w1-[k3e6,k5e4][k3e3][k7e6,k5e4,k3e3]

reads "input 32x32, width multiplier 1, stage 0 has two blocks (kernel 3
expansion 6, kernel 5 expansion 4), stage 1 has one block, ...".  ``Architecture.parse(str(a)) == a`` always holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgenas.errors import ArchitectureError

__all__ = ["Architecture", "Block"]

_BLOCK_RE = re.compile(r"k(\d+)e(\d+)")
_ARCH_RE = re.compile(r"r(\d+)-w(\d+(?:\.\d+)?)-((?:\[[^\[\]]*\])+)")


@dataclass(frozen=True, order=True)
class Block:
    """One inverted-residual block: depthwise kernel size and expansion ratio."""

    kernel: int
    expansion: int

    def __str__(self) -> str:
        return f"k{self.kernel}e{self.expansion}"

    @classmethod
    def parse(cls, text: str) -> Block:
        m = _BLOCK_RE.fullmatch(text.strip())
        if m is None:
            raise ArchitectureError(
                f"cannot parse block {text!r}: expected 'k<kernel>e<expansion>', e.g. 'k3e6'"
            )
        return cls(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Architecture:
    """An immutable network genome; see the module docstring for the string form."""

    resolution: int
    width: float
    stages: tuple[tuple[Block, ...], ...]

    def __post_init__(self) -> None:
        # Normalise so that equal networks compare and hash equal (1 == 1.0, lists -> tuples).
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "stages", tuple(tuple(stage) for stage in self.stages))
        if not isinstance(self.resolution, int) or self.resolution <= 0:
            raise ArchitectureError(f"resolution must be a positive integer, got {self.resolution!r}")
        if not self.width > 0:
            raise ArchitectureError(f"width multiplier must be positive, got {self.width!r}")
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                if not isinstance(block, Block):
                    raise ArchitectureError(f"stage {s} block {b}: expected a Block, got {block!r}")

    @property
    def depths(self) -> tuple[int, ...]:
        """Number of active blocks per stage."""
        return tuple(len(stage) for stage in self.stages)

    def __str__(self) -> str:
        stages = "".join("[" + ",".join(str(b) for b in stage) + "]" for stage in self.stages)
        return f"r{self.resolution}-w{self.width:g}-{stages}"

    def __repr__(self) -> str:
        return f"Architecture.parse({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """Parse the compact string form; raises :class:`ArchitectureError` naming the problem."""
        if not isinstance(text, str):
            raise ArchitectureError(f"an architecture string is expected, got {type(text).__name__}")
        m = _ARCH_RE.fullmatch(text.strip())
        if m is None:
            raise ArchitectureError(
                f"cannot parse architecture {text!r}: expected "
                "'r<resolution>-w<width>-[<blocks>][<blocks>]...', e.g. 'r32-w1-[k3e6,k5e4][k3e3]'"
            )
        stages = []
        for body in re.findall(r"\[([^\[\]]*)\]", m.group(3)):
            blocks = [Block.parse(part) for part in body.split(",")] if body.strip() else []
            stages.append(tuple(blocks))
        return cls(int(m.group(1)), float(m.group(2)), tuple(stages))
