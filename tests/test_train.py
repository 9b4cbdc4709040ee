import numpy as np
import pytest
import torch

from edgenas.data import load_data
from edgenas.errors import SearchError
from edgenas.model import build_model
from edgenas.space import get_space
from edgenas.train import TrainConfig, load_weights, save_weights, train_candidate


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
