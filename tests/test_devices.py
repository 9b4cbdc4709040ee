import pytest

from edgenas.errors import DeviceError
from edgenas.hardware.devices import Device, device_from_dict, get_device, list_devices, load_device
from edgenas.space.cost import Precision


def test_shipped_devices_load():
    names = {d.name for d in list_devices()}
    assert {"local-ort", "local-litert", "jetson-orin-ssh", "raspberry-pi-ssh", "android-adb"} <= names
    jetson = get_device("jetson-orin-ssh")
    assert jetson.kind == "ssh" and jetson.ssh_target() == ("nvidia", "jetson.local", 22)
    assert jetson.execution_provider == "CUDAExecutionProvider" and jetson.energy == "ina3221"
    phone = get_device("android-adb")
    assert phone.kind == "adb" and phone.adb_serial() == "SERIAL" and phone.runtime == "litert"
    local = get_device("local-ort")
    assert local.kind == "local" and local.precisions == (Precision.FP32, Precision.INT8)
    assert get_device("local-litert").delegate == "xnnpack"


def test_device_round_trips_through_its_dict():
    device = get_device("raspberry-pi-ssh")
    assert device_from_dict(device.to_dict(), "copy") == device


def test_ssh_transport_with_port():
    device = Device("pi", transport="ssh://pi@10.0.0.7:2222")
    assert device.ssh_target() == ("pi", "10.0.0.7", 2222)
    assert Device("host", transport="ssh://board").ssh_target() == (None, "board", 22)


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"name": "x", "transport": "telnet://x"}, "transport 'telnet://x' must be"),
        ({"name": "x", "runtime": "tvm"}, "runtime 'tvm' is not one of onnxruntime, litert"),
        ({"name": "x", "transport": "adb:123", "runtime": "onnxruntime"}, "adb devices are profiled with TFLite"),
        ({"name": "x", "threads": 0}, "threads must be a positive integer"),
        ({"name": "x", "energy": "multimeter"}, "energy 'multimeter' is not one of"),
        ({"name": "x", "precisions": ["fp16"]}, "precisions must be fp32 and/or int8"),
        ({"name": "bad name"}, "must be letters, digits"),
        ({"name": "x", "colour": "red"}, r"unknown field\(s\) colour"),
        ({"transport": "local"}, "missing field 'name'"),
    ],
)
def test_bad_device_fields_name_the_problem(fields, fragment):
    with pytest.raises(DeviceError, match=fragment):
        device_from_dict(fields, "device file d.yaml")


def test_device_files(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("name: board\ntransport: ssh://me@board.lan\nruntime: litert\nthreads: 2\nprecisions: fp32\n")
    device = get_device(str(path))
    assert device.precisions == (Precision.FP32,) and device.threads == 2 and device.delegate == "xnnpack"
    with pytest.raises(DeviceError, match="unknown device 'nope'"):
        get_device("nope")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n")
    with pytest.raises(DeviceError, match="is not valid YAML"):
        load_device(broken)


def test_devices_cli_lists_and_shows(capsys, tmp_path):
    import yaml

    from edgenas.cli import main

    assert main(["devices", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert {r.split()[0] for r in rows} == {d.name for d in list_devices()}
    assert any(r.split()[:3] == ["jetson-orin-ssh", "ssh://nvidia@jetson.local", "onnxruntime"] for r in rows)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump({"name": "board", "transport": "ssh://me@10.1.2.3:2200", "threads": 3}))
    assert main(["devices", "show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "board" in shown and "ssh://me@10.1.2.3:2200" in shown and "3" in shown
    assert main(["devices", "show", "nope"]) == 1
    assert "unknown device 'nope'" in capsys.readouterr().err
