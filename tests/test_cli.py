import json
import subprocess
import sys

import pytest

from edgenas.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_explains_the_three_steps(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    for step in ("1. profile", "2. search", "3. export"):
        assert step in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "edgenas", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("edgenas ")


def test_spaces_list_and_show(capsys):
    code, out, _ = run(capsys, "spaces", "list")
    assert code == 0 and "small" in out and "imagenet" in out
    code, out, _ = run(capsys, "spaces", "show", "small", "--resolution", "8", "--in-channels", "1")
    assert code == 0 and "resolutions 8" in out and "224 distinct" in out
    code, out, _ = run(capsys, "spaces", "show", "tiny", "--json")
    data = json.loads(out)
    assert data["fingerprint"] == "681e109e8611b816" and data["n_ops"] == 111


def test_arch_sample_and_show(capsys):
    code, out, _ = run(capsys, "arch", "sample", "--space", "small", "-n", "3", "--seed", "1")
    lines = out.split()
    assert code == 0 and len(lines) == 3 and all(line.startswith("r32-w") for line in lines)
    code, out, _ = run(capsys, "arch", "show", lines[0], "--json", "--precision", "fp32")
    data = json.loads(out)
    assert code == 0 and data["arch"] == lines[0] and data["precision"] == "fp32" and data["params"] > 0
    assert data["ops"][0].startswith("stem_32x32_c3-")
    code, out, _ = run(capsys, "arch", "show", lines[0])
    assert "peak memory" in out and "(int8)" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["arch", "show", "garbage"], "cannot parse architecture 'garbage'"),
        (["arch", "show", "r8-w1-[k3e6][k3e3][k7e6][k3e3][k5e6]"], "gene resolution: 8 is not a choice of this space (choices: 32); use --resolution"),
        (["arch", "show", "r32-w1-[k3e6][k3e9][k7e6][k3e3][k5e6]"], "gene stage1.block0.expansion: 9"),
        (["spaces", "show", "nope"], "unknown search space 'nope'"),
        (["arch", "sample", "-n", "0"], "-n must be a positive integer"),
        (["spaces", "show", "small", "--num-classes", "0"], "--num-classes must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("edgenas: error: ") and fragment in err


def test_arch_export_writes_a_checked_onnx_file(capsys, tmp_path):
    target = tmp_path / "m.onnx"
    code, out, _ = run(
        capsys, "arch", "export", "r8-w0.5-[k5e4][k3e3,k7e6]", "--space", "tiny", "--in-channels", "1", "--out", str(target)
    )
    assert code == 0 and target.stat().st_size > 1000 and "matches torch" in out


BAD_FILES = {
    "dev.yaml": "name: d\ntransport: local\nruntime: onnxruntime\nmemory_budget_kb: lots\n",
    "space.yaml": ("name: s\nresolutions: [8]\nstem: {channels: [16, 8]}\nstages:\n"
                   "  - {channels: 16, stride: 1, depths: [1]}\nhead: {channels: 32}\n"),
    "afile": "",
    "run/archive.sqlite": "garbage, not SQLite",
    "bundle/metadata.json": "{}",
    "empty.npz": "",
}


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["devices", "show", "dev.yaml"], "memory_budget_kb must be a positive number of KiB, got 'lots'"),
        (["spaces", "show", "space.yaml"], "stem.channels: expected one positive integer, got a list [16, 8]"),
        (["arch", "sample", "--space", "small", "--resolution", "100000"], "resolutions must be at most 4096"),
        (["front", "afile"], "afile is not a search run"),
        (["front", "run"], "run/archive.sqlite is not a readable edgenas archive"),
        (["search", "--resume", "--run-dir", "run"], "run/archive.sqlite is not a readable edgenas archive"),
        (["search", "--run-dir", "afile"], "--run-dir afile is a file, not a folder"),
        (["verify", "bundle"], "bundle/metadata.json has format version None"),
        (["export", "run"], "run/archive.sqlite is not a readable edgenas archive"),
        (["search", "--data", "npz:empty.npz"], "cannot be read as .npz"),
        (["search", "--data", "imagefolder:nowhere"], "image folder nowhere does not exist"),
        (["tables", "recalibrate", "missing.json"], "missing.json does not exist"),
        (["search", "--budget"], "argument --budget: expected one argument"),
        (["search", "--augment", "heavy"], "argument --augment: invalid choice"),
        (["tables", "frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_gives_one_error_line(capsys, tmp_path, monkeypatch, argv, fragment):
    """Every command: one 'edgenas: error:' line, exit status 1, no traceback."""
    monkeypatch.chdir(tmp_path)
    for name, text in BAD_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors end the same way
        code = exc.code
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("edgenas: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err


def test_tables_list_survives_a_malformed_local_table(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables").mkdir()
    (tmp_path / "latency_tables" / "bad.json").write_text(json.dumps({
        "format": "edgenas-latency-table", "format_version": 1, "device": {}, "runtime": {}, "precision": "fp32",
        "space": {"fingerprint": "x"}, "task": {"in_channels": 1, "num_classes": 2}, "measurement": {},
        "entries": [1, 2], "overhead": {}, "calibration": {}}))
    code, out, err = run(capsys, "tables", "list")
    assert code == 0 and "bad.json: unreadable" in out and "local-ort_small-r8" in out  # the shipped ones still list


def test_search_flags_come_from_the_config_declaration():
    from dataclasses import fields

    from edgenas.cli import build_parser
    from edgenas.search.config import SearchConfig

    parser = build_parser()
    args = parser.parse_args(["search", "--time-budget", "3", "--no-drift-check", "--population", "5",
                              "--target-energy-mj", "0.5", "--augment", "light", "--problem", "nb201:cifar10:pixel3"])
    config = SearchConfig(**{f.name: getattr(args, f.name) for f in fields(SearchConfig) if "help" in f.metadata})
    assert (config.time_budget_min, config.drift_check, config.population, config.target_energy_mj, config.augment,
            config.problem) == (3.0, False, 5, 0.5, "light", "nb201:cifar10:pixel3")
    defaults = parser.parse_args(["search"])
    for f in fields(SearchConfig):  # every setting has a flag, and the flag's default is the field's
        assert getattr(defaults, f.name) == f.default, f.name
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--precision", "int4"])
    identity = SearchConfig.identity()
    assert {"data", "problem", "space", "seed", "lr", "strategy", "population"} <= set(identity)
    assert not {"budget", "time_budget_min", "workers", "run_dir", "drift_check"} & set(identity)
