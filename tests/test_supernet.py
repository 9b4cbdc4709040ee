"""The weight-sharing supernet: slicing, training (deterministic, resumable), measuring subnets, searching with it,
exporting from it.  Real torch training on the real digits; short recipes (the figures are benchmarks/supernet.py's)."""

import json

import numpy as np
import pytest
import torch

from edgenas.cli import main
from edgenas.errors import SearchError
from edgenas.nn import supernet as sn
from edgenas.nn.supernet import Supernet, SupernetConfig, load_supernet, train_supernet
from edgenas.nn.train import evaluate_accuracy
from edgenas.space.mbconv import get_space

TINY = get_space("tiny")  # two resolutions, two widths: every elastic dimension
SMALL8 = get_space("small").with_choices(resolutions=[8])  # the shipped tables' space for digits


def _randomised(net):
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g))
    return net.eval()


@pytest.mark.parametrize("space", [TINY, SMALL8], ids=["tiny", "small-r8"])
def test_a_subnet_is_the_supernet_sliced(space):
    """The supernet's forward pass of an architecture and the ordinary model built from its slices agree."""
    torch.manual_seed(0)
    net = _randomised(Supernet(space, 1, 10))
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)] + [net.largest(), net.smallest()]
    for arch in archs:
        x = torch.randn(3, 1, arch.resolution, arch.resolution)
        with torch.no_grad():
            assert torch.allclose(net(x, arch), net.subnet(arch).eval()(x), atol=1e-5), arch
    x = torch.randn(3, 1, 16 if space is TINY else 8, 16 if space is TINY else 8)
    with torch.no_grad():
        before = net(x, net.largest())
        net.sort_channels()  # reorders hidden channels by importance: the largest network computes the same
        assert torch.allclose(before, net(x, net.largest()), atol=1e-5)
    assert net.largest().width == max(space.widths) and net.smallest().depths == tuple(1 for _ in space.stages)


def test_training_is_deterministic_and_resumes_after_an_interruption(tmp_path, monkeypatch):
    config = SupernetConfig(epochs=2, seed=3)
    train_supernet(TINY, "digits", tmp_path / "a", config, progress=False)
    real = sn._train_epoch
    calls = []

    def dies_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sn, "_train_epoch", dies_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(TINY, "digits", tmp_path / "b", config, progress=False)
    meta = json.loads((tmp_path / "b" / "supernet.json").read_text())
    assert meta["epochs_done"] == 1 and not meta["complete"] and (tmp_path / "b" / meta["checkpoint"]).is_file()
    with pytest.raises(SearchError, match="not fully trained"):
        load_supernet(tmp_path / "b")
    monkeypatch.setattr(sn, "_train_epoch", real)
    logs = []
    train_supernet(TINY, "digits", tmp_path / "b", config, progress=False, log=logs.append)
    assert any("resuming the supernet" in m and "after epoch 1 of 2" in m for m in logs)
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "a" / "supernet.safetensors")), load_file(str(tmp_path / "b" / "supernet.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "b").glob("checkpoint-*"))
    with pytest.raises(SearchError, match="other settings"):
        train_supernet(TINY, "digits", tmp_path / "b", SupernetConfig(epochs=3, seed=3), progress=False)


@pytest.fixture(scope="module")
def small_supernet(tmp_path_factory):
    out = tmp_path_factory.mktemp("supernet") / "small-r8"
    assert main(["supernet", "train", "--data", "digits", "--space", "small", "--resolution", "8", "--epochs", "2",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_subnets_are_measured_and_the_cli_prints_them(small_supernet, capsys):
    loaded = load_supernet(small_supernet)
    rng = np.random.default_rng(4)
    archs = [SMALL8.sample(rng) for _ in range(4)]
    accuracies = [loaded.accuracy(a) for a in archs]
    assert all(0 <= a <= 1 for a in accuracies)
    # the accuracy is that of the ordinary model export gets, on the supernet's own validation images
    for arch, accuracy in zip(archs, accuracies):
        assert evaluate_accuracy(loaded.model(arch), *loaded.data.val[8]) == pytest.approx(accuracy)
    assert loaded.accuracy(archs[0]) == accuracies[0]  # measuring is deterministic
    capsys.readouterr()
    assert main(["supernet", "eval", str(small_supernet), *map(str, archs[:2]), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"accuracy": {str(a): pytest.approx(v) for a, v in zip(archs[:2], accuracies[:2])}}
    assert main(["supernet", "eval", str(small_supernet), "r32-w1-[k3e3][k3e3][k3e3][k3e3][k3e3]"]) == 1
    assert "at resolution(s) 8" in capsys.readouterr().err
    assert main(["supernet", "eval", str(small_supernet.parent / "none"), str(archs[0])]) == 1
    assert "not a supernet folder" in capsys.readouterr().err


def test_a_search_measures_subnets_and_exports_them(small_supernet, tmp_path):
    from edgenas.export.bundle import export_run
    from edgenas.search.config import SearchConfig
    from edgenas.search.loop import run_search
    from edgenas.search.runs import load_run

    config = SearchConfig(supernet=str(small_supernet), device="local-ort", precision="fp32", budget=48, population=8,
                          drift_check=False, run_dir=str(tmp_path / "run"))
    result = run_search(config, progress=False, report=False, log=lambda m: None)
    assert result.evaluations == result.trained == 48 and result.front
    resolved, evaluations, _ = load_run(tmp_path / "run")
    assert resolved["supernet"]["path"] == str(small_supernet) and resolved["data"]["split"] == {"val_fraction": 0.2,
                                                                                                  "seed": 0}
    assert all(e.epochs == 0 and e.weights is None for e in evaluations)  # nothing trained
    loaded = load_supernet(small_supernet)
    for ev in evaluations[:5]:  # each recorded accuracy is the subnet's
        assert ev.accuracy == pytest.approx(loaded.accuracy(SMALL8.parse(ev.arch)))
    out, reports = export_run(tmp_path / "run", members=str(result.front[0].id), formats="onnx", precision="fp32",
                              out=tmp_path / "export", measure_latency=False, log=lambda m: None)
    assert reports[0].status == "ok" and reports[0].torch_accuracy == pytest.approx(result.front[0].accuracy)


def test_front_members_are_fine_tuned_from_the_supernet(small_supernet, tmp_path):
    from edgenas.search.config import SearchConfig
    from edgenas.search.loop import run_search
    from edgenas.search.runs import load_run

    with pytest.raises(SearchError, match="only with --supernet"):
        SearchConfig(finetune_front=1).validate()
    config = SearchConfig(supernet=str(small_supernet), device="local-ort", precision="fp32", budget=16, population=8,
                          drift_check=False, finetune_front=1, run_dir=str(tmp_path / "run"))
    logs = []
    result = run_search(config, progress=False, report=False, log=logs.append)
    _, evaluations, _ = load_run(tmp_path / "run")
    tuned = [e for e in evaluations if e.weights]
    assert {e.arch for e in tuned} == {e.arch for e in result.front} and all(e.epochs == 1 for e in tuned)
    assert all((tmp_path / "run" / e.weights).is_file() for e in tuned)
    assert sum("fine-tuned" in m for m in logs) == len(tuned)


def test_arch_train_prints_one_json_line(capsys):
    text = "r8-w0.5-[k3e3][k3e3][k3e3][k3e3][k3e3]"
    assert main(["arch", "train", text, "--space", "small", "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch"] == text and 0 <= out["accuracy"] <= 1 and out["steps"] >= 200  # the search's minimum of steps
    assert main(["arch", "train", "r8-w0.3-[k3e3]", "--space", "small"]) == 1


def test_a_training_seed_redraws_the_weights_alone():
    from edgenas.search.evaluators import _training_seed, train_architecture

    text = "r8-w0.5-[k3e3][k3e3][k3e3][k3e3][k3e3]"
    default = train_architecture(text, "small", "digits", epochs=1)
    same = train_architecture(text, "small", "digits", epochs=1, training_seed=_training_seed(text, 0))
    other = train_architecture(text, "small", "digits", epochs=1, training_seed=1001)
    assert all(torch.equal(default.state[k], same.state[k]) for k in default.state)  # the default draw, spelled out
    assert not all(torch.equal(default.state[k], other.state[k]) for k in default.state)
    assert other.steps == default.steps  # same split and recipe
