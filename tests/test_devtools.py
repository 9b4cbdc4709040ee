"""The emulated arm64 device's builder, its parts that need no qemu (the build itself: tests/test_emulated_arm64.py,
marked device), and what the agent and tables record about the machine they ran on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgenas.cli import main
from edgenas.devtools import arm64
from edgenas.errors import BuildError, TableError
from edgenas.hardware.devices import get_device
from edgenas.hardware.tables import LatencyTable
from edgenas.standalone import agent


def test_cpuinfo_lists_every_cpu_as_the_emulated_core():
    text = arm64.cpuinfo_text(3)
    assert text.count("processor\t:") == 3 and "processor\t: 2" in text
    assert text.count("CPU part\t: 0xd0b") == 3  # Cortex-A76, the CPU the launcher asks qemu for
    assert arm64.QEMU_CPU == "cortex-a76" and "asimddp" in text and "sve" not in text
    assert arm64.cpuinfo_text(0).count("processor") == 1


def test_the_launcher_runs_the_arm64_python_under_qemu_isolated(tmp_path):
    root = tmp_path / "a b"  # quoted, not split
    text = arm64.launcher_text(root, "/usr/bin/qemu-aarch64-static")
    assert text.startswith("#!/bin/sh\n")
    line = text.strip().splitlines()[-1]
    assert line == (f"exec /usr/bin/qemu-aarch64-static -cpu cortex-a76 -L '{root}' '{root}/usr/bin/python3.11' "
                    '-E -s "$@"')


def test_device_files_are_valid_devices(tmp_path):
    files = arm64.device_files(tmp_path, ssh="pi@127.0.0.1:2222", identity_file="~/.ssh/key")
    assert sorted(files) == ["emulated-arm64-litert.yaml", "emulated-arm64-ort.yaml",
                             "emulated-arm64-ssh-litert.yaml", "emulated-arm64-ssh-ort.yaml"]
    for name, fields in files.items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump(fields))
        device = get_device(str(path))
        assert device.python == str(tmp_path / "bin" / "python3") and device.name == name[:-5]
        assert device.kind == ("ssh" if "-ssh-" in name else "local")
    ssh = get_device(str(tmp_path / "emulated-arm64-ssh-ort.yaml"))
    assert ssh.ssh_target() == ("pi", "127.0.0.1", 2222) and ssh.identity_file == "~/.ssh/key"
    assert set(arm64.device_files(tmp_path)) == {"emulated-arm64-litert.yaml", "emulated-arm64-ort.yaml"}


def test_the_shipped_example_is_a_valid_ssh_device():
    device = get_device("emulated-arm64-ssh")
    assert device.kind == "ssh" and device.python.endswith("/bin/python3") and device.runtime == "onnxruntime"


def test_dependencies_are_read_from_apt_cache_output():
    text = "python3.11\n  Depends: python3.11-minimal\n  Depends: <libpython3.11-stdlib>\nlibc6\n <virt>\n" \
           "<virtual-pkg>\nlibgcc-s1:arm64\nlibc6\n"
    assert arm64.parse_depends(text) == ["python3.11", "libc6", "libgcc-s1"]


def test_absolute_symlinks_are_pointed_into_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc" / "python3.11").mkdir(parents=True)
    (root / "etc" / "python3.11" / "sitecustomize.py").write_text("# inside\n")
    (root / "usr" / "lib" / "python3.11").mkdir(parents=True)
    link = root / "usr" / "lib" / "python3.11" / "sitecustomize.py"
    link.symlink_to("/etc/python3.11/sitecustomize.py")
    (root / "usr" / "rel").symlink_to("lib")
    (root / ".apt").mkdir()
    (root / ".apt" / "keep").symlink_to("/etc/hostname")
    assert arm64.relink_absolute_symlinks(root) == 1
    assert not os.readlink(link).startswith("/") and link.read_text() == "# inside\n"
    assert os.readlink(root / "usr" / "rel") == "lib" and os.readlink(root / ".apt" / "keep") == "/etc/hostname"


def test_wheel_platforms_stop_at_bookworms_glibc():
    tags = arm64.wheel_platforms()
    assert "manylinux2014_aarch64" in tags and "manylinux_2_36_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags and all(t.endswith("aarch64") for t in tags)


def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys):
    real = arm64.shutil.which
    monkeypatch.setattr(arm64.shutil, "which", lambda name: None if "qemu" in name else real(name))
    with pytest.raises(BuildError, match="apt-get install qemu-user-static"):
        arm64.build_userland(tmp_path / "root", log=lambda m: None)
    assert arm64.main([str(tmp_path / "root")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: qemu-aarch64-static is not installed") and err.count("\n") == 1
    assert not (tmp_path / "root").exists()  # nothing written before the check
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(arm64.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(BuildError, match="is not a folder"):
        arm64.build_userland(tmp_path / "file", log=lambda m: None)
    assert arm64.main([str(tmp_path / "root"), "--ssh", "a b"]) == 1
    assert "must be [user@]host[:port]" in capsys.readouterr().err
    home = tmp_path / "home"  # a folder of the user's own: its bin/ and etc/ must survive
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "mine").write_text("keep")
    with pytest.raises(BuildError, match="not an emulated userland: give a new or empty folder"):
        arm64.build_userland(home, log=lambda m: None)
    assert (home / "bin" / "mine").read_text() == "keep" and sorted(p.name for p in home.iterdir()) == ["bin"]


def test_the_agent_describes_this_machine():
    host = agent.host_info("onnxruntime")
    import platform

    import numpy as np
    import onnxruntime

    assert host["machine"] == platform.machine() and host["python"] == platform.python_version()
    assert host["numpy"] == np.__version__ and host["runtime_version"] == onnxruntime.__version__
    assert host["cpu_count"] == os.cpu_count() and host["os"] == platform.system()
    out = subprocess.run([sys.executable, agent.__file__, "--host", "litert"], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out)["runtime_version"].startswith(("ai-edge-litert", "tflite_runtime", "not installed"))


def test_tables_record_and_show_the_host(search_setup, tmp_path, capsys):
    table = LatencyTable.load(search_setup["table"])  # profiled on this machine by the fixture
    assert table.host["machine"] == agent.host_info("onnxruntime")["machine"]
    assert table.host["runtime_version"] == table.runtime.version
    assert main(["tables", "show", search_setup["table"]]) == 0
    shown = capsys.readouterr().out
    assert f"host        {table.host['machine']}" in shown and f"numpy {table.host['numpy']}" in shown
    data = json.loads(Path(search_setup["table"]).read_text())
    data.pop("host")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert LatencyTable.load(old).host is None and "not recorded" in LatencyTable.load(old).describe_host()
    data["host"] = "aarch64"
    old.write_text(json.dumps(data))
    with pytest.raises(TableError, match="host must be an object"):
        LatencyTable.load(old)


def test_validate_says_when_the_device_reports_another_host(search_setup, tmp_path, capsys):
    from edgenas.hardware.profile import MeasurementSettings
    from edgenas.hardware.validate import host_changes, validate_table

    assert host_changes(None, {"machine": "x86_64"}) == [] and host_changes({"machine": "a"}, {"machine": "a"}) == []
    assert host_changes({"machine": "aarch64", "numpy": "2.4.6"}, {"machine": "x86_64", "numpy": "2.4.6"}) == [
        "machine: aarch64 -> x86_64"]
    data = json.loads(Path(search_setup["table"]).read_text())
    data["host"] = {**data["host"], "machine": "aarch64"}  # as if profiled on another machine
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(data))
    settings = MeasurementSettings(warmup_runs=1, rounds=1, runs_per_round=2)
    report = validate_table(LatencyTable.load(moved), samples=2, seed=3, settings=settings, quiet=True)
    assert report.host_changes == [f"machine: aarch64 -> {agent.host_info('onnxruntime')['machine']}"]
    assert report.to_dict()["host_changes"] == report.host_changes
    same = validate_table(LatencyTable.load(search_setup["table"]), samples=2, seed=3, settings=settings, quiet=True)
    assert same.host_changes == []
