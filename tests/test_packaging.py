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
    assert {"edgenas.latency_tables", "edgenas.devices"} <= listed
    assert config["package-dir"]["edgenas.latency_tables"] == "latency_tables"
    assert any(list((ROOT / "latency_tables").glob("*.json")))
