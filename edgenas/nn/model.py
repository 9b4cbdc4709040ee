"""Torch models of architectures, built op by op from their :class:`~edgenas.space.ops.OpKey` s.

:func:`build_op` turns one key into a module (the same module profiling times
alone), and :func:`build_model` chains the ops of :func:`~edgenas.space.ops.decompose`
into an :class:`EdgeNet`, so the model, the cost model and the latency tables
can never disagree about what a network contains.

Every convolution is followed by BatchNorm; ReLU6 follows all but the
projection convolution of a block; blocks with stride 1 and equal input and
output channels add their input (residual connection).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgenas.errors import ExportCheckError
from edgenas.space.genome import Architecture
from edgenas.space.mbconv import SearchSpace
from edgenas.space.ops import OpKey, OpType, decompose

__all__ = ["ConvBN", "DepthwiseConv2d", "EdgeNet", "MBConv", "build_model", "build_op", "export_onnx",
           "onnx_matches_torch", "reachable_taps"]


def reachable_taps(weight: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The centre of a (C, 1, kh, kw) kernel that can meet an image of ``size`` (H, W) under "same" padding.

    A tap more than ``H - 1`` rows (``W - 1`` columns) from the centre only ever multiplies padding, so a
    convolution with the centre ``min(kh, 2H - 1) x min(kw, 2W - 1)`` taps, padded by half of that, gives the same
    output.  Torch's depthwise convolution is very slow where the kernel is larger than a tiny feature map (a 7x7
    kernel on 1x1 to 4x4 maps, as every 8x8 network has): cropping is what makes training there fast.
    """
    kh, kw = weight.shape[-2:]
    h, w = min(kh, 2 * size[0] - 1), min(kw, 2 * size[1] - 1)
    if (h, w) == (kh, kw):
        return weight
    top, left = (kh - h) // 2, (kw - w) // 2
    return weight[..., top : top + h, left : left + w]


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise "same" convolution that, while training, convolves only the taps that can meet the input
    (:func:`reachable_taps`): the same output and gradients, faster.  In eval mode (inference, export) it is an
    ordinary ``Conv2d``, so exported graphs keep the architecture's kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        weight = reachable_taps(self.weight, x.shape[-2:])
        return F.conv2d(x, weight, self.bias, self.stride, (weight.shape[-2] // 2, weight.shape[-1] // 2),
                        groups=self.groups)


class ConvBN(nn.Sequential):
    """Convolution (no bias; depthwise where ``groups`` equals both channel counts), BatchNorm, optionally ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        conv = DepthwiseConv2d if 1 < groups == cin == cout else nn.Conv2d
        layers: list[nn.Module] = [
            conv(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection (+ input)."""

    def __init__(self, key: OpKey) -> None:
        super().__init__()
        hidden = key.hidden
        self.expand = ConvBN(key.cin, hidden, 1) if key.expansion != 1 else nn.Identity()
        self.depthwise = ConvBN(hidden, hidden, key.kernel, key.stride, groups=hidden)
        self.project = ConvBN(hidden, key.cout, 1, act=False)
        self.residual = key.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class Classifier(nn.Module):
    """Global average pool, dropout, linear layer."""

    def __init__(self, cin: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x.mean(dim=(2, 3))))


def build_op(key: OpKey, dropout: float = 0.0) -> nn.Module:
    """The module of one op (fresh, randomly initialised)."""
    if key.op is OpType.STEM:
        module: nn.Module = ConvBN(key.cin, key.cout, key.kernel, key.stride)
    elif key.op is OpType.MBCONV:
        module = MBConv(key)
    elif key.op is OpType.HEAD:
        module = ConvBN(key.cin, key.cout, 1)
    else:
        module = Classifier(key.cin, key.cout, dropout)
    _init_weights(module)
    return module


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class EdgeNet(nn.Module):
    """A network of the space: ``stem``, ``stages[s][b]``, ``head``, ``classifier``.

    ``ops`` keeps the op keys of every part in execution order, and ``arch``
    the architecture, so weights can be matched to genes (weight inheritance).
    """

    def __init__(self, arch: Architecture, ops: Sequence[OpKey], dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = arch
        self.ops = tuple(ops)
        self.stem = build_op(ops[0])
        blocks = iter(ops[1:-2])
        self.stages = nn.ModuleList(
            nn.Sequential(*(build_op(next(blocks)) for _ in range(depth))) for depth in arch.depths
        )
        self.head = build_op(ops[-2])
        self.classifier = build_op(ops[-1], dropout)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one input image (NCHW layout)."""
        stem = self.ops[0]
        return stem.cin, stem.in_h, stem.in_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.head(x))


def build_model(
    space: SearchSpace, arch: Architecture, num_classes: int, in_channels: int, dropout: float = 0.0
) -> EdgeNet:
    """The torch model of ``arch`` (NCHW input of ``arch.resolution`` x ``arch.resolution``)."""
    return EdgeNet(arch, decompose(space, arch, in_channels, num_classes), dropout)


# ------------------------------------------------------------------ ONNX export
def export_onnx(
    model: nn.Module, input_shape: Sequence[int], path: str | Path, *, dynamo: bool = True, opset: int = 18
) -> Path:
    """Export ``model`` (in eval mode) to ONNX with the torch exporter; batch size 1.

    ``input_shape`` is ``(channels, height, width)``; the graph has one input
    ``input`` and one output ``logits``.  ``dynamo=True`` uses torch's default
    (``torch.export``-based) exporter; ``dynamo=False`` the older TorchScript
    exporter, about 15x faster here, which profiling uses for its many small op
    models (both give the same operators after ONNX Runtime's graph fusions).
    Returns the path written.
    """
    import logging
    import warnings

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    example = torch.zeros(1, *input_shape)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    try:
        # The exporters report progress and deprecations through warnings and logging: noise here.
        onnx_logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if dynamo:
                program = torch.onnx.export(
                    model, (example,), dynamo=True, opset_version=opset, verbose=False,
                    input_names=["input"], output_names=["logits"],
                )
                program.save(str(path))
            else:
                torch.onnx.export(
                    model, (example,), str(path), dynamo=False, opset_version=min(opset, 17),
                    input_names=["input"], output_names=["logits"],
                )
    finally:
        onnx_logger.setLevel(level)
        model.train(was_training)
    return path


def onnx_matches_torch(
    model: nn.Module, onnx_path: str | Path, inputs: np.ndarray, atol: float = 1e-4
) -> float:
    """Run ``inputs`` (N x C x H x W, float32) through torch and ONNX Runtime; return max abs difference.

    Raises :class:`ExportCheckError` if the difference exceeds ``atol``.
    """
    import onnxruntime as ort

    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = np.concatenate([session.run(None, {name: inputs[i : i + 1]})[0] for i in range(len(inputs))])
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= atol:
        raise ExportCheckError(f"ONNX Runtime output differs from torch by {diff:.3g} (allowed {atol:g}) for {onnx_path}")
    return diff
