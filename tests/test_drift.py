"""Recalibration on the real runtime: what it writes and how predictions follow (no assertion on a timing)."""

import json

import numpy as np
import pytest

from edgenas.cli import main
from edgenas.hardware.devices import get_device
from edgenas.hardware.drift import check_drift, recalibrate_table
from edgenas.hardware.predict import Predictor
from edgenas.hardware.profile import MeasurementSettings, profile_device
from edgenas.hardware.tables import LatencyTable

FAST = MeasurementSettings(warmup_runs=2, rounds=2, runs_per_round=5, calibration_networks=3)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec

    space = SearchSpace(name="nano", stem=StemSpec(8, 3, 1), head=HeadSpec(32), resolutions=(8,),
                        stages=(StageSpec(8, 1, (1, 2), kernels=(3, 5), expansions=(3, 6)),
                                StageSpec(16, 2, (1, 2), kernels=(3, 5), expansions=(3, 6))))
    path = tmp_path_factory.mktemp("drift") / "t.json"
    profile_device(get_device("local-ort"), space, "fp32", 1, 10, path, FAST, quiet=True)
    return path


def test_check_drift_refits_from_the_anchors(table_path):
    table = LatencyTable.load(table_path)
    check = check_drift(table, rounds=2)
    assert len(check.anchors) == 3 and np.isfinite(check.speed_ratio) and check.speed_ratio > 0
    assert [a["arch"] for a in check.anchors] == [n["arch"] for n in table.calibration.networks]
    # the ratio is what the anchors say, and the refit predicts the median anchor exactly as measured now
    ratios = [a["now_ms"] / a["then_ms"] for a in check.anchors]
    assert check.speed_ratio == pytest.approx(float(np.median(ratios)))
    space = table.search_space()
    predictor = Predictor(check.apply(table), space, 1, 10)
    predicted = [predictor.predict(space.parse(a["arch"])).latency_ms for a in check.anchors]
    assert any(p == pytest.approx(a["now_ms"], rel=1e-9) for p, a in zip(predicted, check.anchors))
    assert LatencyTable.load(table_path) == table  # a check never writes the table


@pytest.mark.parametrize("ops", [False, True])
def test_recalibrate_writes_the_table_back_with_its_history(table_path, tmp_path, ops):
    path = tmp_path / "copy.json"
    path.write_text(table_path.read_text())
    before = LatencyTable.load(path)
    updated, check = recalibrate_table(path, rounds=2, ops=ops)
    again = LatencyTable.load(path)
    assert again == updated and not list(tmp_path.glob("*.tmp"))
    history = again.calibration.history
    assert len(history) == 1 and history[0]["latency_scale"] == before.calibration.latency_scale
    assert history[0]["ops_retimed"] is ops and again.calibration.recalibrated
    assert again.calibration.latency_scale == check.latency_scale
    assert (again.entries != before.entries) is ops  # ops re-timed only when asked
    assert set(again.entries) == set(before.entries)
    recalibrate_table(path, rounds=2, ops=False)
    assert len(LatencyTable.load(path).calibration.history) == 2


def test_recalibrate_command(table_path, tmp_path, capsys):
    path = tmp_path / "cli.json"
    path.write_text(table_path.read_text())
    assert main(["tables", "recalibrate", str(path), "--anchors-only", "--rounds", "2", "--json", "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["anchors"] == 3 and record["latency_scale"] > 0 and record["device"] == "local-ort"
    assert main(["tables", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "recalibrated" in out and "1 earlier calibration(s)" in out and "time within 5% of it" in out
    assert main(["tables", "recalibrate", str(tmp_path / "missing.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
