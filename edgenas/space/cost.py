"""Analytic cost model: parameters, MACs, model size and peak inference memory.

Counts come from one function, :func:`op_cost`, applied to each
:class:`~edgenas.space.ops.OpKey` of a network.  :func:`architecture_cost` sums them
for one architecture; :class:`CostModel` does the same for a whole batch of
encoded architectures with numpy (millions per second).  Both finish with the
same :func:`_finish`, so the two paths cannot drift apart.

Definitions (all at inference, batch size 1, BatchNorm folded into the
preceding convolution, ReLU6 fused):

- ``params``: trainable parameters of the torch model (BatchNorm included),
  i.e. ``sum(p.numel() for p in model.parameters())``.
- ``macs``: multiply-accumulates of convolutions and the linear layer.
- ``size_kb``: bytes of the deployed weights / 1024.  fp32: 4 bytes per weight
  and per folded bias.  int8: 1 byte per weight; per output channel a 4-byte
  int32 bias, a 4-byte fp32 scale and a 1-byte zero point (per-channel
  quantization, as the exporter does).
- ``peak_memory_kb``: ``size_kb`` plus the largest set of activations alive at
  once, at 4 (fp32) or 1 (int8) byte per element.  Inside an op, a layer's
  input and output are alive, and so is a residual block's input until the
  addition.  For an MBConv block with input ``x`` (cin x H x W), expanded
  ``h1`` (hidden x H x W), depthwise output ``h2`` (hidden x H' x W'), projected
  ``y`` and sum ``z`` (cout x H' x W')::

      expand:  x + h1
      dwise:   h1 + h2 (+ x if residual)          (x + h2 when expansion is 1)
      project: h2 + y  (+ x if residual)
      add:     x + y + z                           (residual blocks only)

  The classifier holds ``input + pooled`` then ``pooled + logits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgenas.space.genome import Architecture
from edgenas.space.mbconv import SearchSpace
from edgenas.space.ops import OpIndex, OpKey, OpType, decompose

__all__ = ["Cost", "CostModel", "OpCost", "Precision", "architecture_cost", "op_cost"]


class Precision(str, Enum):
    """Numeric precision of a deployed model."""

    FP32 = "fp32"
    INT8 = "int8"

    @property
    def weight_bytes(self) -> int:
        return 4 if self is Precision.FP32 else 1

    @property
    def channel_bytes(self) -> int:
        """Bytes per output channel: bias (+ scale and zero point when quantized)."""
        return 4 if self is Precision.FP32 else 4 + 4 + 1

    @property
    def activation_bytes(self) -> int:
        return 4 if self is Precision.FP32 else 1


@dataclass(frozen=True)
class OpCost:
    """Element counts of one op; see the module docstring for the definitions."""

    params: int
    macs: int
    weights: int  # conv/linear weight elements (BatchNorm folded away)
    channels: int  # output channels carrying a folded bias
    activations: int  # peak live activation elements within the op


def _conv(cin: int, cout: int, k: int, out_hw: int, groups: int = 1) -> tuple[int, int]:
    weights = cout * (cin // groups) * k * k
    return weights, weights * out_hw


def op_cost(key: OpKey) -> OpCost:
    """Element counts of one op."""
    in_hw = key.in_h * key.in_w
    out_hw = key.out_h * key.out_w
    if key.op in (OpType.STEM, OpType.HEAD):
        w, macs = _conv(key.cin, key.cout, key.kernel, out_hw)
        return OpCost(w + 2 * key.cout, macs, w, key.cout, key.cin * in_hw + key.cout * out_hw)
    if key.op is OpType.CLASSIFIER:
        w = key.cin * key.cout
        act = max(key.cin * in_hw + key.cin, key.cin + key.cout)
        return OpCost(w + key.cout, w, w, key.cout, act)
    hid = key.hidden
    weights = macs = channels = 0
    x, h1, h2, y = key.cin * in_hw, hid * in_hw, hid * out_hw, key.cout * out_hw
    held = x if key.residual else 0
    live = []
    if key.expansion != 1:
        w, m = _conv(key.cin, hid, 1, in_hw)
        weights, macs, channels = weights + w, macs + m, channels + hid
        live += [x + h1, h1 + h2 + held]
    else:
        live.append(x + h2)
    w, m = _conv(hid, hid, key.kernel, out_hw, groups=hid)
    weights, macs, channels = weights + w, macs + m, channels + hid
    w, m = _conv(hid, key.cout, 1, out_hw)
    weights, macs, channels = weights + w, macs + m, channels + key.cout
    live.append(h2 + y + held)
    if key.residual:
        live.append(x + 2 * y)
    return OpCost(weights + 2 * channels, macs, weights, channels, max(live))


@dataclass(frozen=True)
class Cost:
    """Analytic costs of one architecture at one precision."""

    params: int
    macs: int
    size_kb: float
    peak_memory_kb: float
    precision: Precision

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "params": self.params,
            "macs": self.macs,
            "size_kb": self.size_kb,
            "peak_memory_kb": self.peak_memory_kb,
            "precision": self.precision.value,
        }


def _finish(weights, channels, activations, precision: Precision):
    """Size and peak memory in KiB from element counts (scalars or arrays)."""
    size_bytes = weights * precision.weight_bytes + channels * precision.channel_bytes
    return size_bytes / 1024, (size_bytes + activations * precision.activation_bytes) / 1024


def architecture_cost(
    space: SearchSpace,
    arch: Architecture,
    in_channels: int,
    num_classes: int,
    precision: Precision | str = Precision.INT8,
) -> Cost:
    """Analytic costs of one architecture (see the module docstring)."""
    precision = Precision(precision)
    costs = [op_cost(k) for k in decompose(space, arch, in_channels, num_classes)]
    size_kb, memory_kb = _finish(
        sum(c.weights for c in costs), sum(c.channels for c in costs), max(c.activations for c in costs), precision
    )
    return Cost(sum(c.params for c in costs), sum(c.macs for c in costs), size_kb, memory_kb, precision)


class CostModel:
    """Vectorized analytic costs for batches of encoded architectures of one space and task."""

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int, index: OpIndex | None = None) -> None:
        self.index = index if index is not None else OpIndex(space, in_channels, num_classes)
        costs = [op_cost(k) for k in self.index.keys]
        self._sums = {
            name: np.array([getattr(c, name) for c in costs], dtype=np.int64)
            for name in ("params", "macs", "weights", "channels")
        }
        self._maxes = {"activations": np.array([c.activations for c in costs], dtype=np.int64)}

    def evaluate(self, X: np.ndarray, precision: Precision | str = Precision.INT8) -> dict[str, np.ndarray]:
        """Arrays ``params``, ``macs``, ``size_kb``, ``peak_memory_kb`` for the rows of ``X``."""
        precision = Precision(precision)
        r = self.index.reduce(X, self._sums, self._maxes)
        size_kb, memory_kb = _finish(r["weights"], r["channels"], r["activations"], precision)
        return {"params": r["params"], "macs": r["macs"], "size_kb": size_kb, "peak_memory_kb": memory_kb}
