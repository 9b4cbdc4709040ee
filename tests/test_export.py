"""Export, deploy and verify: real trained members, real ONNX Runtime and LiteRT, a real sshd on loopback."""

import ast
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgenas.cli import main
from edgenas.errors import ExportError, MissingExtraError
from edgenas.export.bundle import deploy_bundle, export_run, read_bundle, verify_bundle
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search
from edgenas.search.runs import load_run
from tests.test_transports import ssh_device


@pytest.fixture(scope="module")
def trained_run(search_setup, tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    config = SearchConfig(space=search_setup["space"], table=search_setup["table"], population=4, budget=4, epochs=3,
                          min_steps=0, drift_check=False, workers=2, run_dir=str(run))
    result = run_search(config, progress=False, log=lambda m: None)
    assert len(result.front) >= 1
    return run


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    folder, reports = export_run(trained_run, formats="onnx,tflite", out=out, log=lambda m: None)
    return folder, reports


def files_pred(report):
    return next(f.predicted_latency_ms for f in report.files if f.file == "model.int8.onnx")


def test_export_writes_verified_bundles(trained_run, exported):
    folder, reports = exported
    _, evaluations, _ = load_run(trained_run)
    by_id = {e.id: e for e in evaluations}
    assert reports and all(r.status in ("ok", "flagged") for r in reports)
    for r in reports:
        bundle = folder / f"member-{r.id}"
        assert r.bundle == str(bundle)
        names = {"model.fp32.onnx", "model.int8.onnx", "model.fp32.tflite", "model.int8.tflite", "metadata.json",
                 "run.py", "samples.npz"}
        assert names <= {p.name for p in bundle.iterdir()}
        meta = read_bundle(bundle)
        assert meta["architecture"] == r.arch == by_id[r.id].arch
        assert meta["input"] == {"channels": 1, "resolution": 8, "dtype": "float32",
                                 "layout": {"onnx": "NCHW", "tflite": "NHWC"}, "range": "[0, 1] before normalisation"}
        assert meta["labels"] == [str(i) for i in range(10)] and len(meta["normalization"]["mean"]) == 1
        assert meta["predicted"]["device"] == "local-ort" and meta["predicted"]["precision"] == "int8"
        assert meta["predicted"]["latency_ms"] == pytest.approx(by_id[r.id].objectives["latency"], rel=1e-5)
        # the run's device is this machine: the table's anchors were timed again before comparing
        drift = meta["predicted"]["drift"]
        assert drift["anchors"] == 2 and drift["device"] == "local-ort" and drift["latency_scale"] > 0
        assert files_pred(r) == pytest.approx(meta["predicted"]["latency_ms_recalibrated"])
        assert meta["preprocessing"]["crop"].startswith("centre square") and meta["preprocessing"]["mode"] == "L"
        assert meta["default_models"] == ["model.int8.onnx", "model.int8.tflite"]
        files = {f.file: f for f in r.files}
        # The weights are the search's: torch and fp32 files give the accuracy the search measured.
        assert r.torch_accuracy == pytest.approx(by_id[r.id].accuracy)
        assert files["model.fp32.onnx"].accuracy == pytest.approx(r.torch_accuracy)
        assert files["model.fp32.onnx"].max_abs_diff < 1e-4 and files["model.fp32.tflite"].max_abs_diff < 1e-3
        assert files["model.int8.onnx"].agreement > 0.9 and files["model.int8.tflite"].agreement > 0.9
        for f in r.files:
            assert f.size_kb == pytest.approx((bundle / f.file).stat().st_size / 1024, abs=0.01)
            assert f.latency_ms > 0
            assert meta["accuracy"][f.file] == f.accuracy
        assert files["model.int8.onnx"].size_kb < files["model.fp32.onnx"].size_kb  # tiny nets: quant params weigh in
        assert files["model.fp32.onnx"].predicted_latency_ms is None  # the table is int8: no fp32 prediction
        drop = files["model.fp32.onnx"].accuracy - files["model.int8.onnx"].accuracy
        assert (r.status == "flagged") == (100 * drop > 1.0 or 100 * (
            files["model.fp32.tflite"].accuracy - files["model.int8.tflite"].accuracy) > 1.0)
    summary = json.loads((folder / "summary.json").read_text())
    assert [m["id"] for m in summary["members"]] == [r.id for r in reports]


def test_the_runner_needs_only_numpy_and_a_runtime(exported):
    source = (exported[0] / f"member-{exported[1][0].id}" / "run.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    stdlib = {"__future__", "argparse", "json", "math", "os", "sys", "time"}
    assert imported - stdlib == {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "PIL"}
    assert "__import__(runtime)" in source  # runtimes are imported only when present


def test_the_runner_classifies_and_times(exported, tmp_path):
    bundle = exported[0] / f"member-{exported[1][0].id}"
    meta = read_bundle(bundle)
    run = [sys.executable, str(bundle / "run.py")]
    for model in ("model.int8.onnx", "model.fp32.tflite"):
        check = json.loads(subprocess.run(run + ["--check", "--json", "--model", model], capture_output=True,
                                          text=True, check=True).stdout)
        assert check["samples"] == 20 and check["correct"] >= 14
    samples = np.load(bundle / "samples.npz")
    paths = []
    for k, image in enumerate(samples["images"]):
        np.save(tmp_path / f"s{k}.npy", image)
        paths.append(str(tmp_path / f"s{k}.npy"))
    scores = json.loads(subprocess.run(run + paths + ["--json"], capture_output=True, text=True, check=True).stdout)
    # The .pgm holds the image rounded to 8 bits: compare on the sample the model is surest of, which that
    # rounding cannot flip (a borderline one can, in the int8 model).
    k = int(np.argmax([s["probability"] for s in scores]))
    pixels = (samples["images"][k][:, :, 0] * 255).round().astype(np.uint8)
    (tmp_path / "a.pgm").write_bytes(b"P5\n# a comment\n8 8\n255\n" + pixels.tobytes())
    out = json.loads(subprocess.run(run + [paths[k], str(tmp_path / "a.pgm"), "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    assert out[0]["label"] in meta["labels"] and out[0]["label"] == out[1]["label"]
    timing = json.loads(subprocess.run(run + ["--time", "--runs", "20", "--json"], capture_output=True, text=True,
                                       check=True).stdout)
    assert timing["model"] == "model.int8.onnx" and timing["median_ms"] > 0


def test_the_runner_check_fails_on_wrong_labels(exported, tmp_path):
    from edgenas.standalone.bundle_runner import required_correct

    assert [required_correct(20, p) for p in (0.99, 0.9, 0.6, None)] == [18, 13, 5, 1]
    bundle = tmp_path / "bundle"
    shutil.copytree(exported[0] / f"member-{exported[1][0].id}", bundle)
    samples = dict(np.load(bundle / "samples.npz"))
    np.savez(bundle / "samples.npz", images=samples["images"], labels=(samples["labels"] + 1) % 10)  # all wrong
    out = subprocess.run([sys.executable, str(bundle / "run.py"), "--check", "--json"], capture_output=True, text=True)
    check = json.loads(out.stdout)
    assert out.returncode == 1 and not check["ok"] and check["correct"] < check["needed"]


def test_a_failing_member_spares_the_others(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _, evaluations, _ = load_run(run)
    trained = [e for e in evaluations if e.status == "ok"]
    broken, other = trained[0], trained[1]
    (run / broken.weights).write_bytes(b"not a safetensors file")
    code = main(["export", str(run), "--members", f"{broken.id},{other.id}", "--out", str(tmp_path / "out"),
                 "--no-latency"])
    assert code == 1
    printed = capsys.readouterr().out
    assert f"member {broken.id} failed" in printed and "1 of 2 bundle(s)" in printed
    assert (tmp_path / "out" / f"member-{other.id}" / "model.int8.onnx").is_file()
    assert not (tmp_path / "out" / f"member-{broken.id}").exists()
    assert not list((tmp_path / "out").glob(".member-*"))  # no half-written bundle left


def test_a_member_without_weights_is_retrained_and_says_so(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _, evaluations, _ = load_run(run)
    member = next(e for e in evaluations if e.status == "ok")
    (run / member.weights).unlink()
    _, reports = export_run(run, members=str(member.id), out=tmp_path / "out", measure_latency=False,
                            log=lambda m: None)
    assert reports[0].status in ("ok", "flagged") and reports[0].notes[0].startswith("retrained")
    assert reports[0].torch_accuracy == pytest.approx(member.accuracy, abs=0.02)  # the search's recipe and seed
    assert read_bundle(tmp_path / "out" / f"member-{member.id}")["notes"] == reports[0].notes
    # a retrained network further than --max-drop from what the search measured is not reported as ok
    _, strict = export_run(run, members=str(member.id), out=tmp_path / "strict", measure_latency=False,
                           max_drop_pct=-100.0, log=lambda m: None)
    assert strict[0].status == "failed" and "not the network the search measured" in strict[0].reason


def test_int8_accuracy_drops_are_flagged(trained_run, tmp_path):
    _, reports = export_run(trained_run, out=tmp_path, measure_latency=False, max_drop_pct=-100.0,
                            log=lambda m: None)
    assert all(r.status == "flagged" and "int8 loses" in r.reason for r in reports)
    assert all(read_bundle(r.bundle)["status"] == "flagged" for r in reports)


def test_fp32_export_has_no_int8_files(trained_run, tmp_path):
    _, reports = export_run(trained_run, precision="fp32", out=tmp_path, measure_latency=False, log=lambda m: None)
    assert [f.file for f in reports[0].files] == ["model.fp32.onnx"]
    assert read_bundle(reports[0].bundle)["default_models"] == ["model.fp32.onnx"]


def test_bad_export_input(trained_run, tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="no evaluation with id 999"):
        export_run(trained_run, members="999", out=tmp_path)
    (tmp_path / "a-file").write_text("keep me")
    with pytest.raises(ExportError, match="--out .*a-file is a file, not a folder"):
        export_run(trained_run, out=tmp_path / "a-file", measure_latency=False, log=lambda m: None)
    assert (tmp_path / "a-file").read_text() == "keep me"
    with pytest.raises(ExportError, match="'front' or archive ids"):
        export_run(trained_run, members="best", out=tmp_path)
    with pytest.raises(ExportError, match="unknown export format\\(s\\) coreml"):
        export_run(trained_run, formats="onnx,coreml", out=tmp_path)
    with pytest.raises(ExportError, match="is not a bundle"):
        read_bundle(tmp_path)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "litert_torch" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'edgenas\[tflite\]'"):
        export_run(trained_run, formats="tflite", out=tmp_path / "t")
    assert not (tmp_path / "t").exists()  # refused before any work


def test_deploy_and_verify_locally(exported, capsys):
    bundle = exported[0] / f"member-{exported[1][0].id}"
    result = deploy_bundle(bundle, "local-ort")
    assert result.model == "model.int8.onnx" and result.check["samples"] == 20 and result.time["median_ms"] > 0
    verified = verify_bundle(bundle, "local-ort", quiet=True, log=lambda m: None)
    assert verified.comparable and verified.measured_ms > 0 and verified.ratio > 0
    assert verified.drift["anchors"] == 2  # the prediction used the table recalibrated now
    plain = verify_bundle(bundle, "local-ort", quiet=True, drift_check=False, log=lambda m: None)
    assert plain.drift is None and plain.predicted_ms == read_bundle(bundle)["predicted"]["latency_ms"]
    other = verify_bundle(bundle, "local-litert", quiet=True, log=lambda m: None)
    assert other.model == "model.int8.tflite" and not other.comparable  # the prediction is for ONNX Runtime
    assert main(["verify", str(bundle), "--device", "local-ort", "--tolerance", "100", "--quiet"]) == 0
    assert "predicted for local-ort" in capsys.readouterr().out
    assert main(["verify", str(bundle), "--device", "local-ort", "--tolerance", "0", "--quiet"]) == 1
    capsys.readouterr()
    assert main(["deploy", str(bundle), "--device", "local-ort", "--json"]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["model"] == "model.int8.onnx" and deployed["check"]["samples"] == 20
    assert deployed["check"]["correct"] == result.check["correct"]  # the same bundle, the same images
    assert main(["deploy", str(bundle), "--device", "local-ort"]) == 0
    assert "20 sample images right" in capsys.readouterr().out


def test_damaged_bundles_are_refused_clearly(exported, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(exported[0] / f"member-{exported[1][0].id}", bundle)
    (bundle / "model.int8.onnx").unlink()
    with pytest.raises(ExportError, match="model.int8.onnx is missing although metadata.json lists it"):
        verify_bundle(bundle, "local-ort", quiet=True, log=lambda m: None)
    (bundle / "metadata.json").write_text(json.dumps({"format_version": 1}))
    assert main(["verify", str(bundle), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgenas: error: ") and "lacks or mistypes architecture" in err and err.count("\n") == 1


def test_deploy_and_verify_over_ssh(exported, sshd, tmp_path):
    bundle = exported[0] / f"member-{exported[1][0].id}"
    device = ssh_device(sshd, tmp_path, threads=1)
    device_file = tmp_path / "loopback.yaml"
    import yaml

    device_file.write_text(yaml.safe_dump(device.to_dict()))
    result = deploy_bundle(bundle, str(device_file))
    assert result.remote.startswith(str(tmp_path / "remote"))
    assert (tmp_path / "remote" / "bundles" / bundle.name / "model.int8.onnx").is_file()  # copied over ssh
    assert result.check["samples"] == 20 and result.time["runs"] == 100
    verified = verify_bundle(bundle, str(device_file), quiet=True)
    assert verified.device == "loopback" and verified.comparable and verified.measured_ms > 0


def test_verify_on_android_times_the_tflite_with_benchmark_model(exported, tmp_path):
    """Over adb (stand-in adb and a benchmark_model replaying the real output format)."""
    from pathlib import Path

    import yaml

    from edgenas.hardware.devices import Device

    fakes = Path(__file__).parent / "fakes"
    bundle = exported[0] / f"member-{exported[1][0].id}"
    device = Device("phone", transport="adb:EMU5554", runtime="litert", adb=str(fakes / "adb"),
                    benchmark_model=str(fakes / "benchmark_model"), workdir=str(tmp_path / "phone"))
    device_file = tmp_path / "phone.yaml"
    device_file.write_text(yaml.safe_dump(device.to_dict()))
    verified = verify_bundle(bundle, str(device_file), quiet=True)
    size = (bundle / "model.int8.tflite").stat().st_size
    assert verified.model == "model.int8.tflite" and not verified.comparable
    assert verified.measured_ms == pytest.approx((100 + size // 1000) / 1000)  # what the stand-in reports
    with pytest.raises(ExportError, match="not supported"):
        deploy_bundle(bundle, str(device_file))


@pytest.mark.parametrize("shape, size", [((60, 60, 3), 32), ((60, 80, 3), 8), ((12, 9, 1), 30)])
def test_runner_preprocessing_matches_the_training_pipeline(shape, size):
    """run.py (numpy only) crops and resizes like the search's data pipeline (torch, antialiased)."""
    import torch
    import torch.nn.functional as F

    from edgenas.nn.data import centre_crop
    from edgenas.standalone import bundle_runner

    x = np.random.default_rng(0).random(shape).astype(np.float32)
    ours = bundle_runner.resize_bilinear(bundle_runner.centre_crop(x), size)
    nchw = centre_crop(x.transpose(2, 0, 1)[None])
    side = nchw.shape[2]
    theirs = F.interpolate(torch.from_numpy(np.ascontiguousarray(nchw)), size=(size, size), mode="bilinear",
                           align_corners=False, antialias=size < side)[0].numpy().transpose(1, 2, 0)
    assert ours.shape == (size, size, shape[2]) and np.abs(ours - theirs).max() < 1e-5


def test_export_formats_are_one_registry():
    from edgenas.errors import ExportError
    from edgenas.export.formats import (
        ONNX,
        ExportFormat,
        format_for_runtime,
        list_formats,
        parse_formats,
        register_format,
    )
    from edgenas.space.cost import Precision

    assert [f.name for f in list_formats()][:2] == ["onnx", "tflite"]
    assert [f.name for f in parse_formats("tflite, onnx,tflite")] == ["tflite", "onnx"]
    assert format_for_runtime("litert").suffix == ".tflite" and format_for_runtime("nope") is None
    assert ONNX.file_name(Precision.INT8) == "model.int8.onnx"
    with pytest.raises(ExportError, match="unknown export format\\(s\\) coreml; choose from onnx, tflite"):
        parse_formats("onnx,coreml")
    with pytest.raises(ValueError, match="registered already"):
        register_format(ExportFormat("onnx", ".onnx", "onnxruntime", "local-ort", "NCHW", lambda *a: None, 1e-3))
