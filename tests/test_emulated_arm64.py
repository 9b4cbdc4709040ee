"""The emulated arm64 device (edgenas.devtools.arm64): a real Debian arm64 userland under qemu-user, profiled,
searched against and deployed to, locally and over a real sshd on 127.0.0.1.

Marked ``device`` (left out of the default suite: building the userland downloads ~60 MB and everything runs
under emulation).  Run with::

    pytest -m device tests/test_emulated_arm64.py

``EDGENAS_ARM64_ROOT=FOLDER`` reuses a userland built there (built on first use); otherwise one is built in the
session's temporary folder.  Needs Debian's qemu-user-static, apt-get and the Debian archive, and PyPI.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edgenas.cli import main
from edgenas.devtools.arm64 import build_userland
from edgenas.hardware.devices import device_from_dict, get_device
from edgenas.hardware.profile import MeasurementSettings, profile_device
from edgenas.hardware.tables import LatencyTable
from edgenas.hardware.validate import validate_table
from edgenas.space.mbconv import get_space
from edgenas.space.ops import space_ops

pytestmark = pytest.mark.device

QUICK = MeasurementSettings(warmup_runs=2, rounds=2, runs_per_round=5, calibration_networks=3)


@pytest.fixture(scope="session")
def arm64(tmp_path_factory):
    if shutil.which("qemu-aarch64-static") is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-aarch64-static is missing: .ci/run installs qemu-user-static for the device tests")
        pytest.skip("qemu-user-static is not installed (apt-get install qemu-user-static)")
    root = Path(os.environ.get("EDGENAS_ARM64_ROOT") or tmp_path_factory.mktemp("arm64") / "root")
    lines = []
    manifest = build_userland(root, log=lines.append)
    return {"root": root, "manifest": manifest, "log": lines}


def emulated(arm64, runtime: str, sshd=None, tmp_path=None):
    """The generated device file's fields as a Device; over the test sshd when given."""
    from edgenas.devtools.arm64 import device_files

    if sshd is None:
        fields = device_files(arm64["root"])[f"emulated-arm64-{runtime}.yaml"]
    else:
        fields = device_files(arm64["root"], ssh=f"{sshd['user']}@127.0.0.1:{sshd['port']}",
                              identity_file=sshd["key"])[f"emulated-arm64-ssh-{runtime}.yaml"]
        fields.update(ssh_options=list(sshd["options"]), workdir=str(tmp_path / "remote"))
    return device_from_dict(fields, "test device")


def test_the_script_builds_an_aarch64_userland_and_keeps_it(arm64):
    root, manifest = arm64["root"], arm64["manifest"]
    assert manifest["host"]["machine"] == "aarch64"
    assert {"python3.11", "libc6", "libstdc++6"} <= set(manifest["packages"])
    assert "perl" not in manifest["packages"]
    out = subprocess.run([str(root / "bin" / "python3"), "-c", "import platform, sys; print(platform.machine(), "
                          "sys.version_info[:2])"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}).stdout
    assert out.split()[0] == "aarch64"  # and the caller's PYTHONPATH did not leak in (-E)
    again = []
    build_userland(root, log=again.append)  # nothing fetched again
    assert any("up to date" in line for line in again) and not any("downloading" in line for line in again)
    for name in ("emulated-arm64-ort.yaml", "emulated-arm64-litert.yaml"):
        device = get_device(str(root / "devices" / name))
        assert device.python == str(root / "bin" / "python3") and device.kind == "local"


def test_the_cli_builds_and_writes_ssh_device_files(arm64, capsys):
    from edgenas.devtools.arm64 import main as arm64_main

    assert arm64_main([str(arm64["root"]), "--ssh", "me@127.0.0.1:2222"]) == 0
    device = get_device(str(arm64["root"] / "devices" / "emulated-arm64-ssh-litert.yaml"))
    assert device.transport == "ssh://me@127.0.0.1:2222" and device.runtime == "litert"
    assert arm64_main([str(arm64["root"]), "--ssh", "me@host; rm -rf /"]) == 1
    err = capsys.readouterr().err
    assert "must be [user@]host[:port]" in err and err.count("error:") == 1


def test_the_agent_reports_the_foreign_machine(arm64):
    from edgenas.standalone import agent

    for runtime, version in (("onnxruntime", arm64["manifest"]["host"]["onnxruntime"]), ("litert", "ai-edge-litert")):
        out = subprocess.run([str(arm64["root"] / "bin" / "python3"), agent.__file__, "--host", runtime],
                             capture_output=True, text=True, check=True).stdout
        host = json.loads(out)
        assert host["machine"] == "aarch64" and host["python"].startswith("3.11")
        assert host["runtime_version"].startswith(version) and host["cpu_count"] >= 1


def test_profile_tiny_at_8x8_there_records_aarch64(arm64, tmp_path, capsys):
    """The issue's bar, through the command: edgenas profile with the generated device file."""
    device_file = arm64["root"] / "devices" / "emulated-arm64-ort.yaml"
    assert main(["profile", "--device", str(device_file), "--space", "tiny", "--resolution", "8",
                 "--in-channels", "1", "--precision", "fp32", "--rounds", "2", "--runs", "5",
                 "--calibration-networks", "3", "--out", str(tmp_path / "emu.json"), "--quiet"]) == 0
    loaded = LatencyTable.load(tmp_path / "emu.json")
    assert loaded.host["machine"] == "aarch64" and loaded.device["name"] == "emulated-arm64-ort"
    assert sorted(loaded.entries) == sorted(str(k) for k in space_ops(get_space("tiny").with_choices(resolutions=[8]), 1, 10))
    assert loaded.host["numpy"] == arm64["manifest"]["host"]["numpy"]
    assert main(["tables", "show", str(tmp_path / "emu.json")]) == 0
    shown = capsys.readouterr().out
    assert "host        aarch64" in shown and "Python 3.11" in shown
    report = validate_table(loaded, samples=4, seed=7, settings=QUICK, quiet=True)
    assert report.samples == 4 and all(a["measured_ms"] > 0 for a in report.architectures)


def test_profile_over_ssh_with_litert(arm64, sshd, tmp_path, nano_space):
    device = emulated(arm64, "litert", sshd, tmp_path)
    table = profile_device(device, nano_space, "fp32", 1, 10, tmp_path / "ssh.json",
                           MeasurementSettings(warmup_runs=1, rounds=1, runs_per_round=3, calibration_networks=2),
                           quiet=True)
    assert table.host["machine"] == "aarch64" and table.host["runtime_version"].startswith("ai-edge-litert")
    assert table.device["transport"].startswith("ssh://")
    assert (tmp_path / "remote").is_dir()  # the agent and models went over ssh


@pytest.fixture(scope="module")
def emulated_run(arm64, search_setup, tmp_path_factory):
    """A search against a table profiled on the emulated device (int8, ONNX Runtime), exported to int8 ONNX and
    TFLite bundles."""
    from edgenas.export.bundle import export_run
    from edgenas.search.config import SearchConfig
    from edgenas.search.loop import run_search
    from edgenas.space.mbconv import load_space

    folder = tmp_path_factory.mktemp("emulated-run")
    device = emulated(arm64, "ort")
    device_file = folder / "emulated-arm64-ort.yaml"
    device_file.write_text(yaml.safe_dump(device.to_dict()))
    table = profile_device(device, load_space(search_setup["space"]), "int8", 1, 10, folder / "table.json", QUICK,
                           quiet=True)
    assert table.host["machine"] == "aarch64"
    config = SearchConfig(space=search_setup["space"], device=str(device_file), table=str(folder / "table.json"),
                          population=4, budget=4,
                          epochs=3, min_steps=0, drift_check=False, run_dir=str(folder / "run"))
    result = run_search(config, progress=False, log=lambda m: None)
    assert result.front
    out, reports = export_run(folder / "run", formats="onnx,tflite", out=folder / "bundles", log=lambda m: None)
    return {"bundle": out / f"member-{reports[0].id}", "device_file": device_file, "table": table}


def test_bundles_deploy_and_check_there_over_ssh(arm64, emulated_run, sshd, tmp_path):
    from edgenas.export.bundle import deploy_bundle

    bundle = emulated_run["bundle"]
    for runtime, model in (("ort", "model.int8.onnx"), ("litert", "model.int8.tflite")):
        device = emulated(arm64, runtime, sshd, tmp_path)
        device_file = tmp_path / f"{runtime}.yaml"
        device_file.write_text(yaml.safe_dump(device.to_dict()))
        result = deploy_bundle(bundle, str(device_file))  # run.py --check fails (raises) on a wrong answer
        assert result.model == model and result.check["samples"] == 20 and result.time["median_ms"] > 0
        here = deploy_bundle(bundle, "local-ort" if runtime == "ort" else "local-litert")
        assert result.check["correct"] == here.check["correct"]  # the same answers on arm64 as on x86


def test_verify_compares_with_the_emulated_table(emulated_run, capsys):
    from edgenas.export.bundle import verify_bundle

    verified = verify_bundle(emulated_run["bundle"], str(emulated_run["device_file"]), quiet=True,
                             drift_check=False, log=lambda m: None)
    assert verified.comparable and verified.measured_ms > 0 and verified.ratio > 0
    assert verified.predicted_for == emulated_run["table"].device["name"]
    assert main(["verify", str(emulated_run["bundle"]), "--device", str(emulated_run["device_file"]),
                 "--tolerance", "100", "--quiet", "--no-drift-check"]) == 0
    assert "predicted for" in capsys.readouterr().out
