import numpy as np
import pytest
import torch

from edgenas.errors import SearchError
from edgenas.nn.data import load_data
from edgenas.nn.model import build_model
from edgenas.nn.train import (
    TrainConfig,
    _augment,
    at_chance,
    load_weights,
    save_weights,
    train_candidate,
    training_budget,
)
from edgenas.space.mbconv import get_space


@pytest.fixture(scope="module")
def digits():
    split = load_data("digits").split(0.2, seed=0)
    return split.normalised("train"), split.normalised("val")


def small_model(seed: int = 0):
    torch.manual_seed(seed)  # initial weights, as the search seeds them before building
    space = get_space("small").with_choices(resolutions=[8])
    return build_model(space, space.parse("r8-w1-[k3e3][k3e3][k3e3][k3e3][k3e3]"), 10, 1)


def test_training_on_digits_learns_and_is_deterministic(digits):
    config = TrainConfig(epochs=3)
    a = train_candidate(small_model(), *digits, config, seed=7)
    b = train_candidate(small_model(), *digits, config, seed=7)
    assert a.status == "ok" and a.epochs == 3 and a.train_seconds > 0
    assert a.accuracy > 0.8  # digits are easy: 3 epochs are far above the 10% of chance
    assert a.accuracy == b.accuracy
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)


def test_inherited_weights_start_where_the_parent_ended(digits, tmp_path):
    trained = train_candidate(small_model(), *digits, TrainConfig(epochs=3), seed=1)
    path = save_weights(trained.state, tmp_path / "w.safetensors")
    zero = train_candidate(small_model(), *digits, TrainConfig(epochs=0), seed=2, init_state=load_weights(path))
    assert zero.status == "ok" and zero.accuracy == pytest.approx(trained.accuracy)


def test_nan_loss_is_a_recorded_failure(digits):
    result = train_candidate(small_model(), *digits, TrainConfig(epochs=2, lr=1e12), seed=0)
    assert result.status == "failed" and result.accuracy is None and "loss became nan" in result.reason.lower()


def test_exceptions_are_recorded_failures(digits):
    (x, y), val = digits
    three_channels = np.repeat(x, 3, axis=1)  # the model expects 1 channel: its first convolution raises
    result = train_candidate(small_model(), (three_channels, y), val, TrainConfig(epochs=1), seed=0)
    assert result.status == "failed" and result.accuracy is None and result.reason.startswith("RuntimeError")


def test_bad_recipes_are_refused():
    with pytest.raises(SearchError, match="optimizer must be sgd or adamw"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(SearchError, match="lr > 0"):
        TrainConfig(lr=0)


@pytest.mark.parametrize(
    "n_train, epochs, min_steps, batch, scratch_epochs, finetune_epochs",
    [
        (240, 6, 200, 16, 14, 5),  # a few hundred photos: batch 16 (15 steps an epoch), 14 epochs = 210 steps
        (1437, 6, 200, 64, 9, 3),  # digits: 23 steps an epoch, 9 epochs; a 2-epoch fine-tune gets 67 steps' worth
        (50000, 6, 200, 64, 6, 2),  # CIFAR-size: 782 steps an epoch, the user's epochs stand
        (240, 6, 0, 16, 6, 2),  # the rule off: epochs as given, the batch still fits the data
        (40, 1, 200, 16, 67, 67),  # tiny: batch 16, 3 steps an epoch; a fine-tune longer than --epochs gets no more
    ],
)
def test_training_budget_gives_small_data_enough_steps(n_train, epochs, min_steps, batch, scratch_epochs,
                                                        finetune_epochs):
    budget = training_budget(n_train, epochs, 2, min_steps)
    assert budget.batch_size == batch
    assert budget.epochs == scratch_epochs and budget.finetune_epochs == finetune_epochs
    assert budget.steps(budget.epochs) >= min_steps
    # fine-tunes: the same minimum in proportion to their epochs (2 of the requested epochs)
    assert budget.steps(budget.finetune_epochs) >= min_steps * min(1, 2 / epochs)
    assert budget.to_dict()["steps"] == budget.epochs * budget.steps_per_epoch


def test_at_chance_uses_a_binomial_margin():
    assert at_chance(0.5, 0.5, 60)  # two balanced classes, a coin flip
    assert at_chance(0.6, 0.5, 60)  # within 2 standard errors (0.129) of 50%
    assert not at_chance(0.7, 0.5, 60)
    assert not at_chance(0.6, 0.5, 2000)  # the margin shrinks with more validation images
    assert at_chance(0.12, 0.1, 360) and not at_chance(0.2, 0.1, 360)
    assert at_chance(0.9, 0.9, 100)  # 90% on 90%-majority data is no skill
    assert not at_chance(None, 0.5, 60)


def test_light_augmentation_crops_and_mirrors_only_when_asked():
    ramp = torch.arange(16, dtype=torch.float32).repeat(16, 1)  # brighter to the right
    batch = ramp.expand(400, 3, 16, 16).clone()
    rng = np.random.default_rng(0)
    plain = _augment(batch, rng, flip=False)
    assert plain.shape == batch.shape
    slope = plain[:, 0, :, -1].mean(1) - plain[:, 0, :, 0].mean(1)
    assert bool((slope > 0).all())  # never mirrored
    assert not torch.equal(plain, batch)  # but shifted: reflect padding changes the border columns
    mirrored = _augment(batch, np.random.default_rng(0), flip=True)
    share = float(((mirrored[:, 0, :, -1].mean(1) - mirrored[:, 0, :, 0].mean(1)) < 0).float().mean())
    assert 0.4 < share < 0.6  # about half mirrored
    again = _augment(batch, np.random.default_rng(0), flip=True)
    assert torch.equal(mirrored, again)  # deterministic under the seed
    small = torch.rand(4, 1, 8, 8)  # below 16 px no crop: a shift would be an eighth of the object
    assert torch.equal(_augment(small, np.random.default_rng(1), flip=False), small)


def test_a_few_hundred_photos_learn_with_the_default_budget():
    """Two classes of real photographs, 200 images: the default budget (batch 16, 200 steps) learns them."""
    import tempfile
    from pathlib import Path

    from edgenas.defaults import MIN_STEPS_DEFAULT
    from edgenas.nn.photos import photo_folder, sklearn_photos

    with tempfile.TemporaryDirectory() as tmp:
        photo_folder(Path(tmp), sklearn_photos(), per_class=100, seed=5)
        data = load_data(f"imagefolder:{tmp}").resized(16)
    split = data.split(0.2, seed=0)
    train, val = split.normalised("train"), split.normalised("val")
    budget = training_budget(len(train[1]), 6, 2, MIN_STEPS_DEFAULT)
    assert budget.batch_size == 16 and budget.steps(budget.epochs) >= MIN_STEPS_DEFAULT
    space = get_space("small").with_choices(resolutions=[16])
    torch.manual_seed(0)
    model = build_model(space, space.parse("r16-w0.5-[k3e3][k3e3][k3e3][k3e3][k3e3]"), 2, 3)
    config = TrainConfig(epochs=budget.epochs, batch_size=budget.batch_size, augment="light", flip=True, threads=1)
    result = train_candidate(model, train, val, config, seed=0)
    assert result.status == "ok" and result.steps == budget.steps(budget.epochs)
    assert result.accuracy > 0.9 and not at_chance(result.accuracy, data.majority_rate, len(val[1]))
