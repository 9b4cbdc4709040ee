import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgenas.errors import DeviceError
from edgenas.hardware.devices import Device, get_device
from edgenas.hardware.predict import Predictor
from edgenas.hardware.profile import MeasurementSettings, profile_device
from edgenas.hardware.tables import LatencyTable
from edgenas.hardware.validate import validate_table
from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec
from edgenas.space.ops import space_ops

FAST = MeasurementSettings(warmup_runs=2, rounds=2, runs_per_round=5, calibration_networks=3)


def check_table(table: LatencyTable, space: SearchSpace, precision: str):
    keys = {str(k) for k in space_ops(space, 1, 10)}
    assert set(table.entries) == keys
    assert table.precision.value == precision and table.space_fingerprint == space.fingerprint
    assert all(e.latency_ms > 0 and e.runs == FAST.rounds * FAST.runs_per_round for e in table.entries.values())
    # Physical invariants only (no timing assertions: the suite runs on loaded machines).
    assert table.overhead.latency_ms > 0 and np.isfinite(table.overhead.latency_ms)
    assert len(table.calibration.networks) == 3 and np.isfinite(table.calibration.latency_scale)
    assert table.calibration.latency_scale > 0 and table.calibration.overhead_ms == table.overhead.latency_ms
    assert table.energy_source is None and not table.has_energy


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_local_onnxruntime_profile(tmp_path, nano_space, precision):
    out = tmp_path / "t.json"
    table = profile_device(get_device("local-ort"), nano_space, precision, 1, 10, out, FAST, quiet=True)
    assert LatencyTable.load(out) == table
    check_table(table, nano_space, precision)
    assert table.runtime.name == "onnxruntime" and table.runtime.version
    assert not (tmp_path / "t.json.work").exists()
    # Predictions follow scale * sum of compute + call overhead, computed here independently from the entries.
    predictor = Predictor(table, nano_space, 1, 10)
    o, scale = table.overhead.latency_ms, table.calibration.latency_scale
    exact = 0
    for net in table.calibration.networks:
        arch = nano_space.parse(net["arch"])
        from edgenas.space.ops import decompose

        times = [table.entries[str(k)].latency_ms for k in decompose(nano_space, arch, 1, 10)]
        compute = sum(max(t - o, 0.05 * t) for t in times)
        predicted = predictor.predict(arch).latency_ms
        assert predicted == pytest.approx(scale * compute + o)
        exact += predicted == pytest.approx(net["measured_ms"], rel=1e-9)
    assert exact >= 1  # the scale is the median fit: the median anchor is predicted exactly


def test_profile_refuses_precisions_the_device_lacks(tmp_path, nano_space):
    device = Device("fp32-only", precisions=("fp32",))
    with pytest.raises(DeviceError, match="does not list int8 among its precisions \\(fp32\\)"):
        profile_device(device, nano_space, "int8", 1, 10, tmp_path / "t.json", FAST, quiet=True)


def test_validate_reports_fidelity(tmp_path, nano_space):
    table = profile_device(get_device("local-ort"), nano_space, "fp32", 1, 10, tmp_path / "t.json", FAST, quiet=True)
    report = validate_table(table, samples=5, seed=3, settings=FAST, quiet=True)
    archs = report.architectures
    assert len(archs) == 5 and len({a["arch"] for a in archs}) == 5
    assert all(a["predicted_ms"] > 0 and a["measured_ms"] > 0 for a in archs)
    # The summary figures are those of the listed predictions and measurements (recomputed independently here).
    ratio = np.array([a["predicted_ms"] / a["measured_ms"] for a in archs])
    assert report.within_10pct == pytest.approx(np.mean(np.abs(ratio - 1) <= 0.10))
    assert report.mape_pct == pytest.approx(100 * np.mean(np.abs(ratio - 1)))
    assert report.bias_pct == pytest.approx(100 * np.median(ratio - 1))
    from scipy.stats import kendalltau

    tau = kendalltau([a["predicted_ms"] for a in archs], [a["measured_ms"] for a in archs]).statistic
    assert report.kendall_tau == pytest.approx(tau)
    # The predictions are the table's own for those architectures.
    from edgenas.hardware.predict import Predictor

    predictor = Predictor(table, nano_space, 1, 10)
    assert [a["predicted_ms"] for a in archs] == pytest.approx(
        [predictor.predict(nano_space.parse(a["arch"])).latency_ms for a in archs])
    assert report.to_dict()["architectures"] == archs and report.samples == 5 and report.device == "local-ort"


def test_profile_over_ssh_on_a_real_sshd(sshd, tmp_path, nano_space):
    from tests.test_transports import ssh_device

    device = ssh_device(sshd, tmp_path)
    table = profile_device(device, nano_space, "fp32", 1, 10, tmp_path / "ssh.json", FAST, quiet=True)
    check_table(table, nano_space, "fp32")
    assert table.device["transport"].startswith("ssh://")
    assert list((tmp_path / "remote").glob("run-*/agent.py"))  # the agent ran from the device's folder


def test_profile_over_adb_with_stand_ins(tmp_path):
    pytest.importorskip("litert_torch")
    fakes = Path(__file__).parent / "fakes"
    space = SearchSpace(
        name="one-block", stem=StemSpec(8), stages=(StageSpec(8, 1, (1,), (3,), (3,)),), head=HeadSpec(16), resolutions=(8,)
    )
    supply = tmp_path / "root" / "sys/class/power_supply/battery"
    supply.mkdir(parents=True)
    (supply / "current_now").write_text("-250000\n")  # 250 mA, discharging
    (supply / "voltage_now").write_text("4000000\n")  # 4 V -> 1 W
    device = Device(
        "phone", transport="adb:EMU5554", runtime="litert", adb=str(fakes / "adb"),
        benchmark_model=str(fakes / "benchmark_model"), workdir=str(tmp_path / "phone"),
        energy="android", energy_root=str(tmp_path / "root"),
    )
    settings = MeasurementSettings(warmup_runs=1, rounds=2, runs_per_round=7, calibration_networks=1)
    table = profile_device(device, space, "fp32", 1, 10, tmp_path / "adb.json", settings, quiet=True)
    models = sorted((tmp_path / "phone").glob("run-*/models/op*.tflite"))
    assert len(models) == len(table.entries) == 4
    for key, path in zip(sorted(table.entries, key=lambda k: [str(s) for s in space_ops(space, 1, 10)].index(k)), models):
        median_ms = (100 + path.stat().st_size // 1000) / 1000
        assert table.entries[key].latency_ms == pytest.approx(median_ms)
        assert table.entries[key].energy_mj == pytest.approx(1.0 * median_ms)  # 1 W x ms
    assert table.energy_source == "android" and table.has_energy
    assert table.runtime.version == "benchmark_model"


def test_a_killed_profile_resumes(tmp_path, nano_space):
    space_file = tmp_path / "nano.yaml"
    space_file.write_text(yaml.safe_dump(nano_space.to_dict()))
    out = tmp_path / "t.json"
    argv = [sys.executable, "-m", "edgenas", "profile", "--space", str(space_file), "--in-channels", "1",
            "--rounds", "6", "--runs", "300", "--calibration-networks", "2", "--out", str(out), "--quiet"]
    rounds = tmp_path / "t.json.work" / "rounds"
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 240
        while not list(rounds.glob("round-*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no round finished in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    done = len(list(rounds.glob("round-*.json")))
    assert 1 <= done < 6 and not out.exists()
    models = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t.json.work" / "models").iterdir()}
    finished = subprocess.run(argv, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"resuming the profile in {tmp_path / 't.json.work'} ({done} of 6 rounds done)" in finished.stderr
    table = LatencyTable.load(out)
    assert all(e.runs == 6 * 300 for e in table.entries.values())
    assert not (tmp_path / "t.json.work").exists()
    assert len(models) == len(table.entries) + 1 + 2  # ops, overhead model, calibration networks: none rebuilt

    # A leftover work folder of another profile is refused, not mixed in.
    (tmp_path / "t.json.work").mkdir()
    (tmp_path / "t.json.work" / "state.json").write_text(json.dumps({"identity": {"other": 1}, "started": 0}))
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "holds an unfinished profile with other settings" in again.stderr


@pytest.mark.tflite
def test_litert_models_time_in_the_agent(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from edgenas.hardware.opmodels import write_op_model
    from edgenas.space.ops import OpKey, OpType
    from edgenas.standalone.agent import run_job

    key = OpKey(OpType.MBCONV, 8, 8, 16, 24, 5, 3, 2, False)
    write_op_model(key, tmp_path / "fp32.tflite", "fp32", runtime="litert")
    write_op_model(key, tmp_path / "int8.tflite", "int8", runtime="litert")
    from ai_edge_litert.interpreter import Interpreter

    inputs = {}
    for name in ("fp32", "int8"):
        interpreter = Interpreter(model_path=str(tmp_path / f"{name}.tflite"))
        detail = interpreter.get_input_details()[0]
        inputs[name] = (tuple(detail["shape"]), np.dtype(detail["dtype"]))
    assert inputs["fp32"] == ((1, 8, 8, 16), np.float32)  # NHWC, as TFLite deployments feed images
    assert inputs["int8"] == ((1, 8, 8, 16), np.int8)  # full-integer model
    job = {"runtime": "litert", "threads": 1, "warmup_runs": 2, "rounds": 2, "runs_per_round": 5,
           "models": [{"id": n, "path": str(tmp_path / f"{n}.tflite")} for n in ("fp32", "int8")]}
    result = run_job(job)
    assert result["runtime_version"].startswith("ai-edge-litert")
    assert all(len(r["times_ms"]) == 10 and min(r["times_ms"]) > 0 for r in result["results"].values())
