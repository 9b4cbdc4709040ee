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
