"""Energy readers on fixture directories shaped like the real sysfs trees."""

import numpy as np
import pytest

from edgenas.standalone.agent import (
    AndroidPowerMeter,
    EnergyUnavailable,
    Ina3221Meter,
    RaplMeter,
    android_power_w,
    make_meter,
)


def write(root, rel, value):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def test_rapl_sums_packages_and_handles_wrap(tmp_path):
    base = "sys/class/powercap"
    write(tmp_path, f"{base}/intel-rapl:0/energy_uj", 999_000_000)
    write(tmp_path, f"{base}/intel-rapl:0/max_energy_range_uj", 1_000_000_000)
    write(tmp_path, f"{base}/intel-rapl:0:0/energy_uj", 5)  # a sub-zone: part of package 0, not counted again
    write(tmp_path, f"{base}/intel-rapl:0:0/max_energy_range_uj", 1_000_000_000)
    write(tmp_path, f"{base}/intel-rapl:1/energy_uj", 10_000_000)
    write(tmp_path, f"{base}/intel-rapl:1/max_energy_range_uj", 1_000_000_000)
    meter = RaplMeter(str(tmp_path) + "/")
    assert len(meter.zones) == 2
    meter.start()
    write(tmp_path, f"{base}/intel-rapl:0/energy_uj", 1_000_000)  # wrapped: +2 J
    write(tmp_path, f"{base}/intel-rapl:1/energy_uj", 13_000_000)  # +3 J
    assert meter.stop() == pytest.approx(5.0)


def test_rapl_missing_is_reported(tmp_path):
    with pytest.raises(EnergyUnavailable, match="no readable RAPL"):
        RaplMeter(str(tmp_path) + "/")


def test_ina3221_jetpack5_hwmon(tmp_path):
    folder = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    write(tmp_path, f"{folder}/in1_label", "VDD_CPU_GPU_CV")
    write(tmp_path, f"{folder}/in1_input", 5000)
    write(tmp_path, f"{folder}/curr1_input", 300)
    write(tmp_path, f"{folder}/in2_label", "VDD_IN")
    write(tmp_path, f"{folder}/in2_input", 5080)  # mV
    write(tmp_path, f"{folder}/curr2_input", 1500)  # mA
    meter = Ina3221Meter(str(tmp_path) + "/")
    assert meter.rail == "VDD_IN"
    assert meter.power_w() == pytest.approx(5.08 * 1.5)


def test_ina3221_jetpack4_iio(tmp_path):
    folder = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    write(tmp_path, f"{folder}/rail_name_0", "POM_5V_IN")
    write(tmp_path, f"{folder}/in_power0_input", 3520)  # mW
    write(tmp_path, f"{folder}/rail_name_1", "POM_5V_GPU")
    write(tmp_path, f"{folder}/in_power1_input", 120)
    meter = Ina3221Meter(str(tmp_path) + "/")
    assert meter.rail == "POM_5V_IN" and meter.power_w() == pytest.approx(3.52)


def test_ina3221_without_input_rail(tmp_path):
    write(tmp_path, "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_0", "POM_5V_GPU")
    with pytest.raises(EnergyUnavailable, match="VDD_IN or POM_5V_IN"):
        Ina3221Meter(str(tmp_path) + "/")


@pytest.mark.parametrize(
    "current, voltage",
    [(-500_000, 4_000_000), (500_000, 4_000_000), (500, 4_000_000), (-500_000, 4000)],
    ids=["microamps-negative", "microamps", "milliamps-quirk", "millivolts-quirk"],
)
def test_android_battery_power_and_quirks(tmp_path, current, voltage):
    write(tmp_path, "sys/class/power_supply/usb/type", "USB")
    write(tmp_path, "sys/class/power_supply/battery/type", "Battery")
    write(tmp_path, "sys/class/power_supply/battery/current_now", current)
    write(tmp_path, "sys/class/power_supply/battery/voltage_now", voltage)
    meter = AndroidPowerMeter(str(tmp_path) + "/")
    assert meter.power_w() == pytest.approx(2.0)
    assert android_power_w(current, voltage) == pytest.approx(2.0)


def test_sampled_meter_integrates_power(tmp_path):
    import time

    write(tmp_path, "sys/class/power_supply/battery/current_now", 1_000_000)
    write(tmp_path, "sys/class/power_supply/battery/voltage_now", 5_000_000)
    meter = AndroidPowerMeter(str(tmp_path) + "/")
    start = time.perf_counter()
    meter.start()
    time.sleep(0.05)
    joules = meter.stop()
    elapsed = time.perf_counter() - start
    assert 5.0 * 0.05 <= joules <= 5.0 * elapsed  # 5 W for at least the 50 ms slept, at most the wall time


def test_make_meter():
    assert make_meter(None) is None and make_meter("none") is None
    with pytest.raises(EnergyUnavailable, match="unknown energy source"):
        make_meter("multimeter")


def test_agent_reports_energy_per_inference(tmp_path):
    """A real ONNX model timed by the agent with a battery meter at a constant 2 W."""
    from edgenas.hardware.opmodels import write_op_model
    from edgenas.space.ops import OpKey, OpType
    from edgenas.standalone.agent import run_job

    write(tmp_path, "sys/class/power_supply/battery/current_now", 500_000)
    write(tmp_path, "sys/class/power_supply/battery/voltage_now", 4_000_000)
    write_op_model(OpKey(OpType.MBCONV, 8, 8, 16, 16, 3, 3, 1, True), tmp_path / "op.onnx", "fp32")
    job = {
        "runtime": "onnxruntime", "threads": 1, "warmup_runs": 2, "rounds": 2, "runs_per_round": 5,
        "energy": "android", "energy_root": str(tmp_path) + "/", "energy_min_seconds": 0.02,
        "models": [{"id": "op", "path": str(tmp_path / "op.onnx")}],
    }
    result = run_job(job)
    assert result["energy_source"] == "android"
    energy = result["results"]["op"]["energy_mj"]
    assert len(energy) == 2 and all(e > 0 for e in energy)
    # 2 W for each inference: energy (mJ) = 2 x time (ms), up to the loop's own overhead per run.
    per_run_ms = np.median(result["results"]["op"]["times_ms"])
    assert 1.0 * per_run_ms < np.median(energy) < 20 * per_run_ms
