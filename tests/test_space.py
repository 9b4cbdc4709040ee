import itertools
import textwrap

import numpy as np
import pytest

from edgenas.errors import ArchitectureError, SpaceError
from edgenas.space.genome import Architecture, Block
from edgenas.space.mbconv import (
    HeadSpec,
    SearchSpace,
    StageSpec,
    StemSpec,
    get_space,
    list_spaces,
    load_space,
    make_divisible,
    space_from_dict,
)


def test_presets_are_listed_and_unknown_names_list_them():
    assert {"small", "imagenet", "tiny"} <= set(list_spaces())
    with pytest.raises(SpaceError, match="presets: imagenet, small, tiny"):
        get_space("nope")


def test_preset_fingerprints_are_stable():
    # Latency tables carry these; a change here invalidates every shipped table of the space.
    assert get_space("small").fingerprint == "0baf0d8a124a84ca"
    assert get_space("imagenet").fingerprint == "ff93f5d77d78662d"
    assert get_space("tiny").fingerprint == "681e109e8611b816"


def test_fingerprint_tracks_structure_not_name():
    small = get_space("small")
    renamed = space_from_dict({**small.to_dict(), "name": "copy", "description": "other words"})
    assert renamed.fingerprint == small.fingerprint
    assert small.with_choices(resolutions=[8]).fingerprint != small.fingerprint
    data = small.to_dict()
    data["stages"][2]["kernels"] = [3, 5]
    assert space_from_dict(data).fingerprint != small.fingerprint


def test_yaml_and_toml_files_load_like_the_preset(tmp_path):
    small = get_space("small")
    yaml_file = tmp_path / "space.yaml"
    import yaml

    yaml_file.write_text(yaml.safe_dump(small.to_dict()))
    assert load_space(yaml_file) == small
    toml_file = tmp_path / "space.toml"
    toml_file.write_text(
        textwrap.dedent(
            """\
            name = "mine"
            resolutions = [16]
            widths = [0.5, 1.0]
            [stem]
            channels = 16
            [head]
            channels = 64
            [[stages]]
            channels = 16
            stride = 1
            depths = [1, 2]
            [[stages]]
            channels = 32
            stride = 2
            depths = [2, 3]
            kernels = [3, 5]
            """
        )
    )
    space = get_space(str(toml_file))
    assert space.name == "mine" and space.resolutions == (16,) and space.widths == (0.5, 1.0)
    assert space.stages[0].kernels == (3, 5, 7) and space.stages[1].kernels == (3, 5)
    assert space.stages[1].expansions == (3, 4, 6)


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"stages": [{"channels": 16, "stride": 1, "depths": [1], "kernels": [4]}]}, r"stages\[0\].kernels: kernel sizes must be odd"),
        ({"stages": [{"channels": 16, "stride": 1, "depths": [0, 1]}]}, r"stages\[0\].depths: expected positive integers"),
        ({"stages": [{"channels": 16, "stride": 1}]}, r"stages\[0\]: missing key\(s\) depths"),
        ({"stages": [{"channels": 16, "stride": 1, "depths": [1], "colour": 1}]}, r"unknown key\(s\) colour"),
        ({"resolutions": []}, "resolutions: expected a non-empty list"),
        ({"widths": [0.5, 0.5]}, "widths must be distinct"),
        ({"stem": {"channels": -3}}, "stem.channels: expected positive integers"),
        ({"stages": []}, "needs at least one stage"),
    ],
)
def test_bad_definitions_name_the_field(patch, fragment):
    data = {**get_space("tiny").to_dict(), **patch}
    with pytest.raises(SpaceError, match=fragment):
        space_from_dict(data, source="space file x.yaml")


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpaceError, match="is not valid YAML"):
        load_space(broken)
    other = tmp_path / "space.json"
    other.write_text("{}")
    with pytest.raises(SpaceError, match="unknown format '.json'"):
        load_space(other)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(SpaceError, match="expected a mapping"):
        load_space(not_mapping)


def test_make_divisible():
    assert make_divisible(16 * 0.5) == 8
    assert make_divisible(24 * 0.75) == 24  # 18 rounds to 16, more than 10% below, so 24
    assert make_divisible(3) == 8
    assert make_divisible(1280 * 1.0) == 1280


def test_encoding_round_trips_and_has_pymoo_bounds(preset, rng):
    xl, xu = preset.bounds
    assert xl.shape == xu.shape == (preset.n_var,)
    assert np.all(xu >= 1)  # only free genes are variables
    for _ in range(50):
        arch = preset.sample(rng)
        x = preset.encode(arch)
        assert np.all((x >= xl) & (x <= xu))
        assert preset.decode(x) == arch
    # Any in-bounds vector decodes to a member of the space.
    for _ in range(50):
        assert preset.contains(preset.decode(rng.integers(xl, xu + 1)))


def test_decode_rejects_out_of_range_genes():
    space = get_space("tiny")
    x = np.zeros(space.n_var, dtype=int)
    x[0] = 7
    with pytest.raises(ArchitectureError, match="gene resolution: index 7 is out of range 0..1"):
        space.decode(x)
    with pytest.raises(ArchitectureError, match="encodes architectures as 12 integers"):
        space.decode([0, 1])


def test_every_architecture_is_reachable_and_counted(micro_space):
    xl, xu = micro_space.bounds
    archs = {micro_space.decode(np.array(x)) for x in itertools.product(*(range(u + 1) for u in xu))}
    assert len(archs) == micro_space.n_architectures() == 2 * 2 * (4 + 16) ** 2
    X = np.array(list(itertools.product(*(range(u + 1) for u in xu))))
    canon = micro_space.canonical_encoding(X)
    assert len({tuple(r) for r in canon}) == len(archs)
    assert all(micro_space.decode(c) == micro_space.decode(x) for c, x in zip(canon[::97], X[::97]))


def test_validate_names_the_offending_gene():
    space = get_space("small")
    good = space.sample(np.random.default_rng(0))
    assert space.validate(good) is good
    cases = [
        ("r32-w1-[k3e6][k3e6][k3e6][k3e6]", "has 4 stages; space 'small' has 5"),
        ("r32-w1-[k3e6,k3e6,k3e6][k3e6][k3e6][k3e6][k3e6]", "gene stage0.depth: 3 is not a choice"),
        ("r32-w1-[k3e6][k3e6][k3e6,k9e6][k3e6][k3e6]", "gene stage2.block1.kernel: 9 is not a choice"),
        ("r32-w1-[k3e6][k3e6][k3e6][k3e2][k3e6]", r"gene stage3.block0.expansion: 2 is not a choice of this space \(choices: 3, 4, 6\)"),
        ("r16-w1-[k3e6][k3e6][k3e6][k3e6][k3e6]", "gene resolution: 16 is not a choice"),
        ("r32-w2-[k3e6][k3e6][k3e6][k3e6][k3e6]", "gene width: 2.0 is not a choice"),
    ]
    for text, fragment in cases:
        arch = Architecture.parse(text)
        assert not space.contains(arch)
        with pytest.raises(ArchitectureError, match=fragment):
            space.validate(arch)


def test_sample_covers_choices_and_is_seeded(preset):
    a = [preset.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    archs = [preset.sample(rng) for _ in range(300)]
    assert all(preset.contains(x) for x in archs)
    for s, st in enumerate(preset.stages):
        assert {x.depths[s] for x in archs} == set(st.depths)
        assert {b.kernel for x in archs for b in x.stages[s]} == set(st.kernels)


def _moves(space, arch):
    return (
        (len(space.resolutions) - 1)
        + (len(space.widths) - 1)
        + sum(
            (len(st.depths) - 1) + d * ((len(st.kernels) - 1) + (len(st.expansions) - 1))
            for st, d in zip(space.stages, arch.depths)
        )
    )


def test_neighbors_are_one_move_away(micro_space, preset, rng):
    for space in (micro_space, preset):
        for _ in range(10):
            arch = space.sample(rng)
            nbrs = space.neighbors(arch)
            assert len(nbrs) == len(set(nbrs)) == _moves(space, arch)
            assert arch not in nbrs
            for n in nbrs:
                assert space.contains(n)
                changed_stages = [s for s in range(len(arch.stages)) if n.stages[s] != arch.stages[s]]
                top = (n.resolution != arch.resolution) + (n.width != arch.width)
                assert top + len(changed_stages) == 1
                for s in changed_stages:
                    old, new = arch.stages[s], n.stages[s]
                    if len(old) == len(new):  # exactly one block gene changed
                        diffs = [(a, b) for a, b in zip(old, new) if a != b]
                        assert len(diffs) == 1
                        (a, b), = diffs
                        assert (a.kernel != b.kernel) + (a.expansion != b.expansion) == 1
                    else:  # truncated, or extended with copies of the last block
                        common = min(len(old), len(new))
                        assert old[:common] == new[:common]
                        assert set(new[common:]) <= {old[-1]}


def test_mutate_returns_a_neighbor(rng):
    space = get_space("small")
    arch = space.sample(rng)
    nbrs = set(space.neighbors(arch))
    children = {space.mutate(arch, rng) for _ in range(200)}
    assert children <= nbrs and len(children) > 10
    single = SearchSpace(
        name="one", stem=StemSpec(8), stages=(StageSpec(16, 1, (1,), (3,), (6,)),), head=HeadSpec(32), resolutions=(32,)
    )
    assert single.n_var == 0 and single.n_architectures() == 1
    only = Architecture(32, 1.0, ((Block(3, 6),),))
    assert single.neighbors(only) == [] and single.mutate(only, rng) == only
    assert single.decode(np.zeros(0, dtype=int)) == only


def test_a_registered_space_is_a_preset():
    from dataclasses import replace

    from edgenas.errors import SpaceError
    from edgenas.space.mbconv import _PRESETS, get_space, list_spaces, register_space

    mine = replace(get_space("tiny"), name="mine")
    register_space(mine)
    try:
        assert get_space("mine") is mine and "mine" in list_spaces()
        with pytest.raises(SpaceError, match="preset already"):
            register_space(replace(mine, name="small"))
    finally:
        _PRESETS.pop("mine")
