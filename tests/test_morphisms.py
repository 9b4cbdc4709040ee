"""Network morphisms on real trained networks and real digits: exact for the function-preserving ones."""

import numpy as np
import pytest
import torch

from edgenas.errors import ArchitectureError
from edgenas.nn.data import load_data
from edgenas.nn.inherit import inherit_weights
from edgenas.nn.model import build_model
from edgenas.nn.train import TrainConfig, evaluate_accuracy, train_candidate
from edgenas.space.mbconv import get_space
from edgenas.space.morphisms import Morphism, apply_random_morphism, morphisms

SPACE = get_space("small").with_choices(resolutions=[8])
PARENT = SPACE.parse("r8-w0.75-[k5e4][k5e4,k5e4][k5e4,k5e4][k5e4,k5e4][k5e4,k5e4]")


@pytest.fixture(scope="module")
def digits():
    split = load_data("digits").split(0.2, seed=0)
    return split.normalised("train"), split.normalised("val")


@pytest.fixture(scope="module")
def parent(digits):
    """The parent, trained 3 epochs (so BatchNorm statistics and weights are far from their initial values)."""
    torch.manual_seed(0)
    model = build_model(SPACE, PARENT, 10, 1)
    result = train_candidate(model, *digits, TrainConfig(epochs=3), seed=0)
    assert result.status == "ok" and result.accuracy > 0.85
    return model, result.accuracy


def child_of(parent_model, arch, seed=1):
    torch.manual_seed(seed)
    child = build_model(SPACE, arch, 10, 1)
    inherit_weights(parent_model, child)
    return child


@torch.no_grad()
def outputs(model, x):
    model.eval()
    return model(torch.from_numpy(x)).numpy()


def test_the_space_offers_every_kind_of_morphism():
    kinds = {m.kind for m in morphisms(SPACE, PARENT)}
    assert kinds == set(Morphism)
    for m in morphisms(SPACE, PARENT):
        assert SPACE.contains(m.child) and m.child != PARENT
        assert m.child.width == PARENT.width and m.child.resolution == PARENT.resolution


def test_morphism_directions():
    by_kind = {}
    for m in morphisms(SPACE, PARENT):
        by_kind.setdefault(m.kind, []).append(m)
    for m in by_kind[Morphism.GROW_KERNEL]:
        assert m.child.stages[m.stage][m.block].kernel > PARENT.stages[m.stage][m.block].kernel
    for m in by_kind[Morphism.SHRINK_EXPANSION]:
        assert m.child.stages[m.stage][m.block].expansion < PARENT.stages[m.stage][m.block].expansion
    for m in by_kind[Morphism.INSERT_BLOCK]:
        assert m.child.depths[m.stage] > PARENT.depths[m.stage]
        assert m.child.stages[m.stage][: PARENT.depths[m.stage]] == PARENT.stages[m.stage]
    for m in by_kind[Morphism.REMOVE_BLOCK]:
        assert m.child.depths[m.stage] < PARENT.depths[m.stage]
    assert all(m.kind.function_preserving for m in by_kind[Morphism.GROW_EXPANSION])
    assert not any(m.kind.function_preserving for m in by_kind[Morphism.REMOVE_BLOCK])


def test_random_morphism_draws_every_kind_and_is_seeded():
    rng = np.random.default_rng(0)
    drawn = [apply_random_morphism(SPACE, PARENT, rng) for _ in range(200)]
    assert {m.kind for m in drawn} == set(Morphism)
    again = [apply_random_morphism(SPACE, PARENT, np.random.default_rng(0)).child for _ in range(3)]
    assert len(set(again)) == 1
    only = apply_random_morphism(SPACE, PARENT, rng, kinds=(Morphism.INSERT_BLOCK,))
    assert only.kind is Morphism.INSERT_BLOCK


@pytest.mark.parametrize("kind", [k for k in Morphism if k.function_preserving])
def test_function_preserving_morphisms_keep_the_outputs(parent, digits, kind):
    model, _ = parent
    x = digits[1][0][:200]
    before = outputs(model, x)
    for m in morphisms(SPACE, PARENT, kinds=(kind,)):
        child = child_of(model, m.child)
        diff = np.abs(outputs(child, x) - before).max()
        assert diff < 1e-5, f"{m}: max abs difference {diff}"


def test_a_chain_of_function_preserving_morphisms_keeps_the_outputs(parent, digits):
    model, _ = parent
    x = digits[1][0][:200]
    before = outputs(model, x)
    rng = np.random.default_rng(5)
    current, arch = model, PARENT
    preserving = tuple(k for k in Morphism if k.function_preserving)
    for step in range(6):
        m = apply_random_morphism(SPACE, arch, rng, kinds=preserving)
        current, arch = child_of(current, m.child, seed=step), m.child
    assert arch != PARENT
    assert np.abs(outputs(current, x) - before).max() < 1e-5


def test_a_fresh_network_does_differ(parent, digits):
    """The check above can fail: a child built without inheritance gives other outputs."""
    model, _ = parent
    x = digits[1][0][:50]
    torch.manual_seed(3)
    fresh = build_model(SPACE, PARENT, 10, 1)
    assert np.abs(outputs(fresh, x) - outputs(model, x)).max() > 1e-2


@pytest.mark.parametrize("kind", [k for k in Morphism if not k.function_preserving])
def test_approximate_morphisms_recover_with_a_short_fine_tune(parent, digits, kind):
    model, accuracy = parent
    m = apply_random_morphism(SPACE, PARENT, np.random.default_rng(1), kinds=(kind,))
    child = child_of(model, m.child)
    inherited = evaluate_accuracy(child, *digits[1])
    tuned = train_candidate(child, *digits, TrainConfig(epochs=1, lr=0.01), seed=0)
    assert tuned.status == "ok"
    assert tuned.accuracy >= accuracy - 0.03, f"{m}: {accuracy:.3f} -> {inherited:.3f} -> {tuned.accuracy:.3f}"


def test_inheritance_refuses_another_width(parent):
    model, _ = parent
    other = build_model(SPACE, SPACE.parse(str(PARENT).replace("w0.75", "w1")), 10, 1)
    with pytest.raises(ArchitectureError, match="differ in width"):
        inherit_weights(model, other)


@pytest.mark.parametrize("seed", range(5))
def test_morphisms_are_the_spaces_moves_of_depth_kernel_and_expansion(seed):
    """One move generator: the morphisms of an architecture are exactly its neighbours at the same resolution and
    width, and each is named by its direction."""
    from edgenas.space.mbconv import get_space

    space = get_space("small")
    arch = space.sample(np.random.default_rng(seed))
    children = [m.child for m in morphisms(space, arch)]
    same_input = [n for n in space.neighbors(arch) if n.resolution == arch.resolution and n.width == arch.width]
    assert sorted(map(str, children)) == sorted(map(str, same_input)) and len(set(map(str, children))) == len(children)
    for m in morphisms(space, arch):
        grown = (sum(b.kernel + b.expansion for st in m.child.stages for b in st) + sum(map(len, m.child.stages))
                 > sum(b.kernel + b.expansion for st in arch.stages for b in st) + sum(map(len, arch.stages)))
        assert grown == m.kind.value.startswith(("grow", "insert")), m
