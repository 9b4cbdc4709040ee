"""Network morphisms: moves that turn a trained network into a child that can start from its weights.

A morphism changes one part of an architecture and says how the parent's
weights carry over (:func:`edgenas.nn.inherit.inherit_weights` does the weight
side).  Three are *function-preserving* (the child computes exactly what the
parent computes, before any training):

- ``grow-kernel``: a larger depthwise kernel, the parent's kernel zero-padded;
- ``grow-expansion``: more hidden channels in a block, whose projection weights are zero;
- ``insert-block``: residual blocks appended to a stage, initialised to the identity
  (the projection's BatchNorm scale and shift are zero).

Three are *approximate* (the child is close to the parent and recovers with a short fine-tune):

- ``shrink-kernel``: a smaller kernel, the centre of the parent's;
- ``shrink-expansion``: fewer hidden channels, keeping those with the largest projection weights;
- ``remove-block``: the last residual blocks of a stage dropped.

Blocks are added and removed at the end of a stage, so the blocks of parent and
child are matched by position.  Width and resolution never change (they change
the shape of every layer).  This module is pure genome: it knows nothing of torch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from edgenas.space.genome import Architecture
from edgenas.space.mbconv import SearchSpace

__all__ = ["Morph", "Morphism", "apply_random_morphism", "morphisms"]


class Morphism(enum.Enum):
    GROW_KERNEL = "grow-kernel"
    GROW_EXPANSION = "grow-expansion"
    INSERT_BLOCK = "insert-block"
    SHRINK_KERNEL = "shrink-kernel"
    SHRINK_EXPANSION = "shrink-expansion"
    REMOVE_BLOCK = "remove-block"

    @property
    def function_preserving(self) -> bool:
        return self in (Morphism.GROW_KERNEL, Morphism.GROW_EXPANSION, Morphism.INSERT_BLOCK)


@dataclass(frozen=True)
class Morph:
    """One applicable morphism: its kind, where (stage, block) and the child it makes."""

    kind: Morphism
    stage: int
    block: int
    child: Architecture

    def __str__(self) -> str:
        return f"{self.kind.value} at stage {self.stage} block {self.block}"


#: Which morphism a move of a gene is, by its direction.
_KINDS = {"kernel": (Morphism.GROW_KERNEL, Morphism.SHRINK_KERNEL),
          "expansion": (Morphism.GROW_EXPANSION, Morphism.SHRINK_EXPANSION),
          "depth": (Morphism.INSERT_BLOCK, Morphism.REMOVE_BLOCK)}


def morphisms(space: SearchSpace, arch: Architecture, kinds: tuple[Morphism, ...] = tuple(Morphism)) -> list[Morph]:
    """Every morphism of the given kinds that leads from ``arch`` to another member of ``space``: the space's moves
    (:meth:`SearchSpace.moves`) of kernels, expansions and depths, each named by its direction (resolution and width
    are not morphisms: they change every layer).  An inserted block copies the kernel and expansion of the stage's
    last block."""
    out: list[Morph] = []
    for move in space.moves(arch):
        if move.gene in _KINDS:
            grow, shrink = _KINDS[move.gene]
            kind = grow if move.new > move.old else shrink
            if kind in kinds:
                out.append(Morph(kind, move.stage, move.block, move.child))
    return out


def apply_random_morphism(space: SearchSpace, arch: Architecture, rng: np.random.Generator,
                          kinds: tuple[Morphism, ...] = tuple(Morphism)) -> Morph | None:
    """A random morphism of ``arch``: a kind drawn uniformly among those that apply, then a place.

    Drawing the kind first keeps rare kinds (inserting a block) as likely as
    common ones (changing one of many kernels).  ``None`` if none applies.
    """
    options = morphisms(space, arch, kinds)
    if not options:
        return None
    by_kind: dict[Morphism, list[Morph]] = {}
    for m in options:
        by_kind.setdefault(m.kind, []).append(m)
    present = [k for k in Morphism if k in by_kind]
    chosen = by_kind[present[rng.integers(len(present))]]
    return chosen[rng.integers(len(chosen))]
