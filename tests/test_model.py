import numpy as np
import pytest
import torch
from torch import nn

from edgenas.errors import ExportCheckError, ExportError
from edgenas.nn.model import (
    DepthwiseConv2d,
    MBConv,
    build_model,
    build_op,
    export_onnx,
    onnx_matches_torch,
    reachable_taps,
)
from edgenas.space.genome import Architecture
from edgenas.space.mbconv import get_space
from edgenas.space.ops import OpKey, OpType


def test_model_has_bn_relu6_and_residuals_where_shapes_allow():
    space = get_space("small")
    arch = Architecture.parse("r32-w1-[k3e6,k5e4][k7e3][k3e3,k3e3][k5e6][k3e4,k7e6]")
    model = build_model(space, arch, num_classes=10, in_channels=1)
    blocks = [b for stage in model.stages for b in stage]
    assert [b.residual for b in blocks] == [True, True, False, False, True, False, False, True]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 + 3 * len(blocks)
    assert len([m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]) == len(convs)
    assert len([m for m in model.modules() if isinstance(m, nn.ReLU6)]) == 2 + 2 * len(blocks)
    assert all(c.bias is None for c in convs)
    assert model.input_shape == (1, 32, 32)
    out = model(torch.zeros(2, 1, 32, 32))
    assert out.shape == (2, 10)


def test_residual_block_adds_its_input():
    block = build_op(OpKey(OpType.MBCONV, 8, 8, 16, 16, 3, 3, 1, True)).eval()
    assert isinstance(block, MBConv)
    nn.init.zeros_(block.project[1].weight)  # zero the last BatchNorm scale: the branch outputs its bias (0)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), x)


def test_expansion_one_has_no_expand_conv():
    block = build_op(OpKey(OpType.MBCONV, 8, 8, 32, 16, 3, 1, 1, False))
    assert isinstance(block.expand, nn.Identity)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_onnx_export_matches_torch_in_onnxruntime(tmp_path, dynamo):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    cases = [
        (get_space("tiny"), "r8-w0.5-[k5e4,k3e3][k7e6]", 1),
        (get_space("tiny"), "r16-w1-[k3e3][k5e6,k3e4]", 3),
        (get_space("small"), "r32-w1-[k3e6,k5e4][k7e3][k3e3,k3e3][k5e6][k3e4,k7e6]", 3),
    ]
    for i, (space, text, channels) in enumerate(cases):
        model = build_model(space, space.parse(text), num_classes=10, in_channels=channels)
        # Non-trivial BatchNorm statistics, so the check covers the folding of BN in eval mode.
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(8, *model.input_shape))
        path = export_onnx(model, model.input_shape, tmp_path / f"m{i}.onnx", dynamo=dynamo)
        inputs = rng.standard_normal((4, *model.input_shape)).astype(np.float32)
        assert onnx_matches_torch(model, path, inputs) < 1e-4


def test_a_wrong_export_is_caught(tmp_path):
    space = get_space("tiny")
    arch = space.parse("r8-w0.5-[k5e4][k7e6]")
    torch.manual_seed(0)
    model = build_model(space, arch, 10, 1)
    path = export_onnx(model, model.input_shape, tmp_path / "m.onnx", dynamo=False)
    torch.manual_seed(1)
    other = build_model(space, arch, 10, 1)
    inputs = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    assert issubclass(ExportCheckError, ExportError)  # caught with every other export failure
    with pytest.raises(ExportCheckError, match="differs from torch"):
        onnx_matches_torch(other, path, inputs)


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 5), (8, 2), (9, 9)])
def test_depthwise_training_skips_only_taps_that_never_meet_the_image(kernel, stride, size):
    """While training, the depthwise convolution convolves a cropped kernel on tiny maps: its outputs and gradients
    are an ordinary Conv2d's (same weights), and in eval mode (what export traces) it is that Conv2d."""
    torch.manual_seed(0)
    fast = DepthwiseConv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=False)
    plain = torch.nn.Conv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=False)
    plain.weight.data.copy_(fast.weight.data)
    x = torch.randn(2, 6, *size)
    out_fast, out_plain = fast.train()(x), plain(x)
    assert out_fast.shape == out_plain.shape
    assert torch.allclose(out_fast, out_plain, atol=1e-6)
    grad = torch.randn_like(out_plain)
    out_fast.backward(grad)
    out_plain.backward(grad)
    assert torch.allclose(fast.weight.grad, plain.weight.grad, atol=1e-5)
    reach = (min(kernel, 2 * size[0] - 1), min(kernel, 2 * size[1] - 1))
    assert reachable_taps(fast.weight, size).shape[-2:] == reach
    with torch.no_grad():
        assert torch.equal(fast.eval()(x), plain(x))


def test_mbconv_blocks_use_the_fast_depthwise_convolution_alone():
    space = get_space("small").with_choices(resolutions=[8])
    model = build_model(space, space.sample(np.random.default_rng(0)), 10, 1)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    depthwise = [m for m in convs if isinstance(m, DepthwiseConv2d)]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels > 1 for m in depthwise)
    assert all(m.groups == 1 for m in convs if m not in depthwise)
