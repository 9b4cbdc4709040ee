"""The wheel must contain every subpackage and the shipped data (an editable install hides gaps)."""

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "edgenas").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert {"edgenas._data.latency_tables", "edgenas._data.devices"} <= listed
    assert config["package-dir"]["edgenas._data.latency_tables"] == "latency_tables"
    # A data folder must not share its dotted name with a module (edgenas/devices.py exists).
    for name in listed:
        assert not (ROOT / (name.replace(".", "/") + ".py")).exists(), name
    assert any(list((ROOT / "latency_tables").glob("*.json")))
