import itertools

import numpy as np
import pytest
import torch

from edgenas.errors import ArchitectureError
from edgenas.nn.model import build_model
from edgenas.space.genome import Architecture
from edgenas.space.mbconv import get_space
from edgenas.space.ops import OpIndex, OpKey, OpType, decompose, space_ops


def test_op_key_string_round_trips():
    key = OpKey(OpType.MBCONV, 16, 16, 24, 40, 5, 6, 2, False)
    assert str(key) == "mbconv_16x16_c24-40_k5_e6_s2_nores"
    assert OpKey.parse(str(key)) == key
    assert key.out_h == key.out_w == 8 and key.hidden == 144
    with pytest.raises(ArchitectureError, match="cannot parse op key"):
        OpKey.parse("conv_1x1")
    with pytest.raises(ArchitectureError, match="cannot parse op key"):
        OpKey.parse("pool_8x8_c1-1_k1_e1_s1_nores")


def test_decompose_follows_the_network():
    space = get_space("small")
    arch = Architecture.parse("r32-w1-[k3e6,k5e4][k7e3][k3e3,k3e3][k5e6][k3e4,k7e6]")
    ops = decompose(space, arch, in_channels=1, num_classes=10)
    assert [str(k) for k in ops] == [
        "stem_32x32_c1-16_k3_e1_s1_nores",
        "mbconv_32x32_c16-16_k3_e6_s1_res",
        "mbconv_32x32_c16-16_k5_e4_s1_res",
        "mbconv_32x32_c16-24_k7_e3_s2_nores",
        "mbconv_16x16_c24-40_k3_e3_s2_nores",
        "mbconv_8x8_c40-40_k3_e3_s1_res",
        "mbconv_8x8_c40-80_k5_e6_s2_nores",
        "mbconv_4x4_c80-96_k3_e4_s1_nores",
        "mbconv_4x4_c96-96_k7_e6_s1_res",
        "head_4x4_c96-256_k1_e1_s1_nores",
        "classifier_4x4_c256-10_k1_e1_s1_nores",
    ]
    with pytest.raises(ArchitectureError, match="num_classes must be a positive integer"):
        decompose(space, arch, 1, 0)


def test_op_keys_match_the_shapes_torch_sees(preset, rng):
    arch = preset.sample(rng)
    model = build_model(preset, arch, num_classes=7, in_channels=3)
    seen = []
    parts = [model.stem, *[b for stage in model.stages for b in stage], model.head, model.classifier]
    hooks = [p.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), tuple(o.shape)))) for p in parts]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, arch.resolution, arch.resolution))
    for h in hooks:
        h.remove()
    ops = decompose(preset, arch, 3, 7)
    assert len(seen) == len(ops)
    for key, (inp, out) in zip(ops, seen):
        assert inp[1:] == (key.cin, key.in_h, key.in_w), key
        expected = (key.cout,) if key.op is OpType.CLASSIFIER else (key.cout, key.out_h, key.out_w)
        assert out[1:] == expected, key


def test_space_ops_is_exactly_the_union_over_all_architectures(micro_space):
    _, xu = micro_space.bounds
    archs = {micro_space.decode(np.array(x)) for x in itertools.product(*(range(u + 1) for u in xu))}
    union = set()
    for arch in archs:
        union.update(decompose(micro_space, arch, 3, 10))
    ops = space_ops(micro_space, 3, 10)
    assert set(ops) == union
    assert ops == sorted(ops) and len(ops) == len(set(ops))
    # Per (resolution, width): stem + head + classifier, 4 blocks of stage 0 (both positions have the
    # same key: 16->16, stride 1) and 2 x 4 of stage 1; minus the 4 blocks 8x8_c16-16 that r8-w1 stage 0
    # and r16-w0.5 stage 1 position 1 share.
    assert len(ops) == 4 * (3 + 4 + 8) - 4


def test_preset_op_counts():
    # The profiling workload of each preset; changing it changes every table.
    assert len(space_ops(get_space("small"), 3, 10)) == 224  # 3 widths; stage 0 positions share keys
    assert len(space_ops(get_space("small").with_choices(resolutions=[8]), 1, 10)) == 224
    assert len(space_ops(get_space("imagenet"), 3, 1000)) == 103
    idx = OpIndex(get_space("tiny"), 3, 10)
    assert len(idx) == 111 and idx.keys[idx.id_of(idx.keys[5])] == idx.keys[5]


def test_reduce_sums_per_op_values(micro_space, rng):
    index = OpIndex(micro_space, 3, 10)
    values = rng.integers(0, 1000, size=len(index))
    archs = [micro_space.sample(rng) for _ in range(100)]
    X = np.stack([micro_space.encode(a) for a in archs])
    out = index.reduce(X, sums={"total": values}, maxes={"peak": values})
    for arch, total, peak in zip(archs, out["total"], out["peak"]):
        ids = [index.id_of(k) for k in decompose(micro_space, arch, 3, 10)]
        assert total == values[ids].sum() and peak == values[ids].max()
    with pytest.raises(ArchitectureError, match="index out of range"):
        index.reduce(X + 5, sums={"total": values})
    with pytest.raises(ArchitectureError, match="expected an N x 12 integer array"):
        index.reduce(X[:, :3], sums={"total": values})
