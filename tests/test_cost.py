import numpy as np
import pytest
import torch
from torch import nn

from edgenas.errors import ArchitectureError
from edgenas.nn.model import build_model
from edgenas.space.cost import CostModel, Precision, architecture_cost, op_cost
from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec
from edgenas.space.ops import decompose


@pytest.fixture
def two_block_space():
    return SearchSpace(
        name="two-block",
        stem=StemSpec(8, 3, 1),
        stages=(StageSpec(8, 1, (1,), (3,), (2,)), StageSpec(16, 2, (1,), (3,), (2,))),
        head=HeadSpec(16),
        resolutions=(4,),
    )


def test_hand_counted_two_block_net(two_block_space):
    """Worked by hand: 1x4x4 input, stem 8 ch, block 8->8 (e2, residual), block 8->16 (e2, stride 2), head 16, 2 classes."""
    arch = two_block_space.parse("r4-w1-[k3e2][k3e2]")
    cost = architecture_cost(two_block_space, arch, in_channels=1, num_classes=2, precision="fp32")
    # MACs: stem 8*16*(1*9)=1152; block 1: expand 16*16*8=2048, dw 16*16*9=2304, project 8*16*16=2048;
    # block 2: expand 16*16*8=2048, dw 16*4*9=576, project 16*4*16=1024; head 16*4*16=1024; linear 16*2=32
    assert cost.macs == 1152 + (2048 + 2304 + 2048) + (2048 + 576 + 1024) + 1024 + 32 == 12256
    # Parameters: conv weights plus BatchNorm (2 per channel), linear weight and bias.
    assert cost.params == (72 + 16) + (128 + 144 + 128 + 2 * 40) + (128 + 144 + 256 + 2 * 48) + (256 + 32) + 34 == 1514
    # Peak live activations, in elements: block 1 depthwise holds h1 (16x4x4) + h2 (16x4x4) + residual x (8x4x4).
    peak_elements = 256 + 256 + 128
    # Folded weights 1288 and 114 output channels (one bias each).
    assert cost.size_kb == pytest.approx((1288 + 114) * 4 / 1024)
    assert cost.peak_memory_kb == pytest.approx(((1288 + 114) * 4 + peak_elements * 4) / 1024)
    int8 = architecture_cost(two_block_space, arch, 1, 2, Precision.INT8)
    assert int8.size_kb == pytest.approx((1288 + 114 * 9) / 1024)
    assert int8.peak_memory_kb == pytest.approx((1288 + 114 * 9 + peak_elements) / 1024)
    assert [op_cost(k).activations for k in decompose(two_block_space, arch, 1, 2)] == [144, 640, 384, 128, 80]


def _torch_counts(model, input_shape):
    """Independent counts from the torch modules: MACs through forward hooks, folded weights and biases."""
    macs = []

    def conv_hook(m, i, o):
        macs.append(o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [
        m.register_forward_hook(lambda m, i, o: macs.append(m.in_features * m.out_features))
        for m in model.modules()
        if isinstance(m, nn.Linear)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    weights = sum(m.weight.numel() for m in layers)
    biases = sum(m.weight.shape[0] for m in layers)
    return sum(macs), weights, biases


def test_costs_agree_with_the_torch_model(preset, rng):
    for _ in range(3):
        arch = preset.sample(rng)
        model = build_model(preset, arch, num_classes=10, in_channels=3)
        cost = architecture_cost(preset, arch, 3, 10, "fp32")
        assert cost.params == sum(p.numel() for p in model.parameters())
        macs, weights, biases = _torch_counts(model, model.input_shape)
        assert cost.macs == macs
        assert cost.size_kb == pytest.approx((weights + biases) * 4 / 1024)
        int8 = architecture_cost(preset, arch, 3, 10, "int8")
        assert int8.size_kb == pytest.approx((weights + biases * 9) / 1024)
        assert int8.peak_memory_kb > int8.size_kb and cost.peak_memory_kb > 3.9 * int8.size_kb


def test_vectorized_costs_equal_the_scalar_path(preset, micro_space, rng):
    for space in (preset, micro_space):
        archs = [space.sample(rng) for _ in range(200)]
        X = np.stack([space.encode(a) for a in archs])
        model = CostModel(space, 3, 10)
        for precision in ("fp32", "int8"):
            got = model.evaluate(X, precision)
            for i, arch in enumerate(archs):
                want = architecture_cost(space, arch, 3, 10, precision)
                assert got["params"][i] == want.params and got["macs"][i] == want.macs
                assert got["size_kb"][i] == pytest.approx(want.size_kb)
                assert got["peak_memory_kb"][i] == pytest.approx(want.peak_memory_kb)


def test_vectorized_path_handles_chunks_and_bad_rows(rng):
    from edgenas.space.mbconv import get_space

    space = get_space("small")
    xl, xu = space.bounds
    X = rng.integers(xl, xu + 1, size=(70_000, space.n_var))  # more than two chunks
    got = CostModel(space, 3, 10).evaluate(X)
    for i in (0, 32767, 32768, 69_999):
        assert got["macs"][i] == architecture_cost(space, space.decode(X[i]), 3, 10).macs
    X[69_999, 4] = xu[4] + 1
    with pytest.raises(ArchitectureError, match=f"gene {space.free_genes[4].name}: index out of range"):
        CostModel(space, 3, 10).evaluate(X)
    with pytest.raises(ValueError, match="'fp16' is not a valid Precision"):
        CostModel(space, 3, 10).evaluate(X[:2], "fp16")
