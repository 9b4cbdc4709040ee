"""Weight inheritance: carry a trained parent's weights into a child network (the weight side of morphisms).

:func:`inherit_weights` works block by block, matching blocks by position in
their stage (see :mod:`edgenas.space.morphisms`):

- a block present in both keeps the parent's weights; a larger depthwise kernel
  is the parent's zero-padded, a smaller one its centre; more hidden channels get
  fresh expansion and depthwise weights and *zero* projection weights, fewer keep
  the parent's channels with the largest projection weights (L1 norm);
- a block only the child has starts as the identity: its projection BatchNorm
  has zero scale and shift, so the residual connection passes its input through;
- the stem, head and classifier are copied.

Function-preserving morphisms give a child whose outputs equal the parent's in
eval mode (the tests check < 1e-5 on real inputs).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from edgenas.errors import ArchitectureError
from edgenas.nn.model import EdgeNet, MBConv
from edgenas.space.ops import OpKey

__all__ = ["inherit_weights"]


def _shape(op: OpKey) -> OpKey:
    """The op without its input size (weights do not depend on it)."""
    return replace(op, in_h=0, in_w=0)


@torch.no_grad()
def inherit_weights(parent: EdgeNet, child: EdgeNet) -> None:
    """Overwrite ``child``'s weights with those inherited from ``parent`` (in place); see the module docstring."""
    same = (_shape(parent.ops[0]) == _shape(child.ops[0]) and _shape(parent.ops[-2]) == _shape(child.ops[-2])
            and _shape(parent.ops[-1]) == _shape(child.ops[-1]) and len(parent.stages) == len(child.stages))
    if not same:
        raise ArchitectureError(
            f"cannot inherit weights from {parent.arch} into {child.arch}: they differ in width or layout "
            "(morphisms keep the width and the stages)"
        )
    child.stem.load_state_dict(parent.stem.state_dict())
    child.head.load_state_dict(parent.head.state_dict())
    child.classifier.load_state_dict(parent.classifier.state_dict())
    for s, (p_stage, c_stage) in enumerate(zip(parent.stages, child.stages)):
        for b, c_block in enumerate(c_stage):
            if b < len(p_stage):
                _morph_block(p_stage[b], c_block, where=f"stage {s} block {b}")
            else:
                _identity_block(c_block, where=f"stage {s} block {b}")


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, keep: torch.Tensor) -> None:
    n = len(keep)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name)[:n] = getattr(src, name)[keep]
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _fit_kernel(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """Zero-pad or centre-crop a (C, 1, k, k) depthwise kernel to ``kernel`` x ``kernel``."""
    k = weight.shape[-1]
    if kernel >= k:
        d = (kernel - k) // 2
        return nn.functional.pad(weight, (d, d, d, d))
    o = (k - kernel) // 2
    return weight[..., o : o + kernel, o : o + kernel]


def _morph_block(p: MBConv, c: MBConv, where: str) -> None:
    if (p.residual != c.residual or p.project[0].out_channels != c.project[0].out_channels
            or p.depthwise[0].stride != c.depthwise[0].stride
            or isinstance(p.expand, nn.Identity) != isinstance(c.expand, nn.Identity)):
        raise ArchitectureError(f"cannot inherit weights at {where}: the blocks differ in channels or stride")
    p_hidden, c_hidden = p.depthwise[0].out_channels, c.depthwise[0].out_channels
    if c_hidden < p_hidden:
        importance = p.project[0].weight.abs().sum(dim=(0, 2, 3))
        keep = torch.sort(torch.topk(importance, c_hidden).indices).values
    else:
        keep = torch.arange(p_hidden)
    n = len(keep)
    if not isinstance(p.expand, nn.Identity):
        c.expand[0].weight[:n] = p.expand[0].weight[keep]
        _copy_bn(p.expand[1], c.expand[1], keep)
    c.depthwise[0].weight[:n] = _fit_kernel(p.depthwise[0].weight[keep], c.depthwise[0].kernel_size[0])
    _copy_bn(p.depthwise[1], c.depthwise[1], keep)
    c.project[0].weight.zero_()
    c.project[0].weight[:, :n] = p.project[0].weight[:, keep]
    c.project[1].load_state_dict(p.project[1].state_dict())


def _identity_block(c: MBConv, where: str) -> None:
    if not c.residual:
        raise ArchitectureError(f"cannot start {where} as the identity: it has no residual connection")
    c.project[1].weight.zero_()
    c.project[1].bias.zero_()
