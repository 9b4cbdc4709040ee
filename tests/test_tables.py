import json

import numpy as np
import pytest

from edgenas.errors import TableError
from edgenas.hardware.predict import Predictor
from edgenas.hardware.tables import LatencyTable, find_table
from edgenas.space.cost import Precision
from edgenas.space.mbconv import get_space
from edgenas.space.ops import space_ops


def synthetic_table(space, in_channels=3, num_classes=10, precision="fp32", overhead=0.01, scale=1.0, energy=False):
    """A table with known entries, for testing the arithmetic of prediction (not a measurement)."""
    rng = np.random.default_rng(0)
    entries = {
        str(k): {"latency_ms": float(overhead + rng.uniform(0.01, 1.0)), "spread_ms": 0.001, "runs": 10,
                 "energy_mj": float(rng.uniform(0.01, 1.0)) if energy else None}
        for k in space_ops(space, in_channels, num_classes)
    }
    return LatencyTable.from_dict(
        {
            "format": "edgenas-latency-table", "format_version": 1,
            "device": {"name": "test"}, "runtime": {"name": "onnxruntime"}, "precision": precision,
            "space": {**space.to_dict(), "fingerprint": space.fingerprint},
            "task": {"in_channels": in_channels, "num_classes": num_classes},
            "measurement": {}, "entries": entries, "energy_source": "rapl" if energy else None,
            "overhead": {"latency_ms": overhead, "energy_mj": 0.002 if energy else None},
            "calibration": {"latency_scale": scale, "energy_scale": 0.9 if energy else None},
        }
    )


def test_round_trip_through_json(tmp_path, nano_space):
    table = synthetic_table(nano_space, energy=True)
    path = table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(path)
    assert loaded == table and loaded.has_energy
    assert loaded.search_space() == nano_space
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(format="other"), "is not an edgenas latency table"),
        (lambda d: d.update(format_version=99), "has format version 99; this edgenas reads version 1"),
        (lambda d: d.pop("overhead"), r"lacks field\(s\) overhead"),
        (lambda d: d.update(precision="fp16"), "precision 'fp16' is not fp32 or int8"),
        (lambda d: d["entries"].update({"conv_1": {"latency_ms": 1, "spread_ms": 0, "runs": 1}}), "entry 'conv_1' is not an op key"),
        (lambda d: d["entries"][next(iter(d["entries"]))].update(latency_ms=-1), "expected a positive number"),
        (lambda d: d["entries"][next(iter(d["entries"]))].pop("runs"), "needs numeric latency_ms, spread_ms and runs"),
        (lambda d: d["calibration"].update(latency_scale=0), "latency_scale must be a finite positive number"),
        (lambda d: d.update(entries={}), "has no entries"),
    ],
)
def test_bad_tables_are_refused_with_the_reason(tmp_path, nano_space, mutate, fragment):
    data = synthetic_table(nano_space).to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TableError, match=fragment):
        LatencyTable.load(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(TableError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(TableError, match="is not valid JSON"):
        LatencyTable.load(tmp_path / "x.json")


def test_prediction_formula_and_vectorized_path(nano_space, rng):
    table = synthetic_table(nano_space, overhead=0.01, scale=1.1, energy=True)
    predictor = Predictor(table, nano_space, 3, 10)
    from edgenas.space.ops import decompose

    archs = [nano_space.sample(rng) for _ in range(50)]
    batch = predictor.predict_batch(np.stack([nano_space.encode(a) for a in archs]))
    for i, arch in enumerate(archs):
        ops = decompose(nano_space, arch, 3, 10)
        expected = 1.1 * (sum(table.entries[str(k)].latency_ms - 0.01 for k in ops) + 0.01)
        expected_mj = 0.9 * (sum(table.entries[str(k)].energy_mj - 0.002 for k in ops) + 0.002)
        got = predictor.predict(arch)
        assert got.latency_ms == pytest.approx(expected) and got.energy_mj == pytest.approx(expected_mj)
        assert batch["latency_ms"][i] == pytest.approx(expected) and batch["energy_mj"][i] == pytest.approx(expected_mj)


def test_prediction_refuses_mismatched_tables(nano_space):
    table = synthetic_table(nano_space)
    other = nano_space.with_choices(resolutions=[16])
    with pytest.raises(TableError, match=r"profiled for space 'nano' \(resolutions \[8\].*not for space 'nano'"):
        Predictor(table, other, 3, 10)
    with pytest.raises(TableError, match="holds fp32 latencies, but int8 was asked for"):
        Predictor(table, nano_space, 3, 10, precision=Precision.INT8)
    with pytest.raises(TableError, match=r"has no entry for op stem_8x8_c1-8.*profiled for 3 input channel\(s\) and 10 classes"):
        Predictor(table, nano_space, 1, 10)
    assert not Predictor(table, nano_space, 3, 10).has_energy


def test_find_table(tmp_path, nano_space):
    table = synthetic_table(nano_space)
    table.save(tmp_path / "a.json")
    (tmp_path / "junk.json").write_text("[]")
    found = find_table("test", nano_space.fingerprint, "fp32", 3, 10, folder=tmp_path)
    assert found is not None and found.path.name == "a.json"
    assert find_table("test", nano_space.fingerprint, "int8", 3, 10, folder=tmp_path) is None
    assert find_table("test", nano_space.fingerprint, "fp32", 1, 10, folder=tmp_path) is None
    assert find_table("test", get_space("small").fingerprint, "fp32", 3, 10, folder=tmp_path) is None


def test_ops_timed_below_the_overhead_are_floored_never_negative(nano_space):
    """An op can time at or below the call overhead on a loaded machine: its compute time is floored at 5%."""
    from edgenas.hardware.predict import floored_ops, op_compute_ms

    table = synthetic_table(nano_space, overhead=0.01)  # entries 0.02-1.01 ms: none within 5% of the overhead
    assert floored_ops(table) == 0
    key = sorted(table.entries)[0]
    raw = table.to_dict()
    raw["entries"][key]["latency_ms"] = 0.004  # faster than the 0.01 ms overhead
    table = LatencyTable.from_dict(raw)
    assert floored_ops(table) == 1
    assert op_compute_ms([0.2, 1.5], 0.5).tolist() == pytest.approx([0.01, 1.0])
    predictor = Predictor(table, nano_space, 3, 10)
    X = np.stack([nano_space.encode(nano_space.sample(np.random.default_rng(s))) for s in range(50)])
    assert (predictor.predict_batch(X)["latency_ms"] > 0).all()


def test_fit_calibration_by_hand():
    from edgenas.hardware.predict import fit_calibration

    # measured = 2 * compute + 0.1 exactly for three networks: the fit recovers scale 2 and the overhead.
    scale, call = fit_calibration([1.0, 2.0, 4.0], [2.1, 4.1, 8.1], 0.1)
    assert scale == pytest.approx(2.0) and call == 0.1
    assert fit_calibration([], [], 0.3) == (1.0, 0.3)


def test_recalibrated_calibration_changes_predictions_as_stated(nano_space):
    table = synthetic_table(nano_space, overhead=0.01, scale=1.0)
    arch = nano_space.sample(np.random.default_rng(1))
    before = Predictor(table, nano_space, 3, 10)
    compute = before.compute_sum(arch)
    assert before.predict(arch).latency_ms == pytest.approx(compute + 0.01)  # an old table: scale * (sum + o)
    after = Predictor(table.with_calibration(0.5, 0.002), nano_space, 3, 10)
    assert after.predict(arch).latency_ms == pytest.approx(0.5 * compute + 0.002)


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"overhead": {"latency_ms": float("nan")}}, "overhead.latency_ms must be a finite number"),
        ({"calibration": {"latency_scale": float("inf")}}, "latency_scale must be a finite positive number"),
        ({"calibration": {"latency_scale": 1.0, "overhead_ms": -1}}, "overhead_ms must be a finite number"),
        ({"calibration": {"latency_scale": 1.0, "networks": [{"arch": 3}]}}, "calibration.networks must list"),
        ({"device": "a string"}, "device must be an object"),
    ],
)
def test_tables_with_impossible_values_are_refused(nano_space, patch, fragment):
    raw = {**synthetic_table(nano_space).to_dict(), **patch}
    with pytest.raises(TableError, match=fragment):
        LatencyTable.from_dict(raw)


def test_a_table_of_another_device_is_refused(nano_space):
    from edgenas.hardware.devices import get_device

    table = synthetic_table(nano_space)
    with pytest.raises(TableError, match="measured on another setup: device 'test' .* vs 'raspberry-pi-ssh'"):
        table.check_device(get_device("raspberry-pi-ssh"))
    raw = table.to_dict()
    raw["device"] = {"name": "local-ort"}
    raw["runtime"] = {"name": "onnxruntime", "execution_provider": "CPUExecutionProvider", "threads": 1}
    LatencyTable.from_dict(raw).check_device(get_device("local-ort"))  # the same setup: accepted
    assert LatencyTable.from_dict(raw).measurements_hash != table.measurements_hash
