import os
import sys
from pathlib import Path

import pytest

from edgenas.errors import (
    DeviceCommandError,
    DeviceConfigError,
    DeviceError,
    DeviceTimeoutError,
    DeviceUnreachableError,
)
from edgenas.hardware.devices import Device
from edgenas.hardware.transports import AdbTransport, LocalTransport, SshTransport, make_transport

FAKES = Path(__file__).parent / "fakes"


def ssh_device(sshd, tmp_path, **kw) -> Device:
    return Device(
        "loopback",
        transport=f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}",
        identity_file=sshd["key"],
        ssh_options=sshd["options"],
        python=sys.executable,
        workdir=str(tmp_path / "remote"),
        **kw,
    )


def test_local_transport_runs_argument_lists(tmp_path):
    transport = LocalTransport(Device("here"), workdir=str(tmp_path))
    assert transport.run(["echo", "a b", "$(touch pwned)"]).stdout == "a b $(touch pwned)\n"
    assert not (Path.cwd() / "pwned").exists()
    with pytest.raises(DeviceError, match="failed \\(exit 3\\): boom"):
        transport.run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    with pytest.raises(DeviceError, match="'no-such-tool' is not installed"):
        transport.run(["no-such-tool"])


def test_make_transport_picks_by_device():
    assert isinstance(make_transport(Device("a")), LocalTransport)
    assert isinstance(make_transport(Device("b", transport="ssh://u@h")), SshTransport)
    assert isinstance(make_transport(Device("c", transport="adb:X1", runtime="litert")), AdbTransport)


def test_ssh_transport_against_a_real_sshd(sshd, tmp_path):
    transport = make_transport(ssh_device(sshd, tmp_path))
    hostile = "name with spaces; $(touch pwned) `id` 'quote\""
    out = transport.run(["printf", "%s|", hostile, "two"])
    assert out.stdout == hostile + "|two|"
    assert not list(Path(tmp_path).rglob("pwned")) and not (Path.home() / "pwned").exists()
    local = tmp_path / "local"
    (local / "sub dir").mkdir(parents=True)
    (local / "a.txt").write_text("alpha")
    (local / "sub dir" / "b.txt").write_text("beta")
    remote = transport.path("copy here")
    transport.push_dir(local, remote)
    assert (Path(remote) / "sub dir" / "b.txt").read_text() == "beta"
    transport.pull(f"{remote}/a.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "alpha"
    binary = bytes(range(256)) * 64  # every byte value, invalid UTF-8 included: a model or an array
    (local / "blob.bin").write_bytes(binary)
    transport.push_dir(local, remote)
    transport.pull(f"{remote}/blob.bin", tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin").read_bytes() == binary
    with pytest.raises(DeviceCommandError, match="failed \\(exit 1\\)") as failed:
        transport.run(["false"])
    assert failed.value.returncode == 1


def test_ssh_to_a_closed_port_fails_clearly(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    device = Device("gone", transport=f"ssh://nobody@127.0.0.1:{port}", ssh_options=("StrictHostKeyChecking=no",))
    with pytest.raises(DeviceUnreachableError, match="on gone \\(ssh://nobody@127.0.0.1:.*cannot be reached \\(exit 255\\)"):
        make_transport(device).run(["true"], timeout=30)


def test_device_errors_say_which_kind_of_failure(tmp_path):
    """Configuration, connection, timeout and command failure are told apart (and each is a DeviceError)."""
    from edgenas.hardware.devices import get_device

    with pytest.raises(DeviceConfigError, match="unknown device 'no-such'"):
        get_device("no-such")
    local = make_transport(Device("here", workdir=str(tmp_path)))
    with pytest.raises(DeviceUnreachableError, match="not installed or not on PATH") as missing:
        local.run(["edgenas-no-such-program"])
    assert isinstance(missing.value, ConnectionError)
    with pytest.raises(DeviceTimeoutError, match="no answer within 0.5 s") as late:
        local.run(["sleep", "30"], timeout=0.5)
    assert isinstance(late.value, TimeoutError)
    with pytest.raises(DeviceCommandError) as failed:
        local.run(["sh", "-c", "echo broken >&2; exit 3"])
    assert failed.value.returncode == 3 and "broken" in str(failed.value)
    for kind in (DeviceConfigError, DeviceUnreachableError, DeviceTimeoutError, DeviceCommandError):
        assert issubclass(kind, DeviceError)


def test_adb_transport_with_a_stand_in_adb(tmp_path):
    device = Device("phone", transport="adb:EMU5554", runtime="litert", adb=str(FAKES / "adb"), workdir=str(tmp_path / "dev"))
    transport = make_transport(device)
    assert transport.run(["echo", "x; echo y"]).stdout == "x; echo y\n"  # quoted: one argument, no second command
    local = tmp_path / "models"
    (local / "deep").mkdir(parents=True)
    (local / "deep" / "m.tflite").write_bytes(b"12345")
    transport.push_dir(local, transport.path("models"))
    assert (tmp_path / "dev" / "models" / "deep" / "m.tflite").read_bytes() == b"12345"
    transport.pull(transport.path("models", "deep", "m.tflite"), tmp_path / "m.copy")
    assert (tmp_path / "m.copy").read_bytes() == b"12345"
    assert os.access(FAKES / "benchmark_model", os.X_OK)
