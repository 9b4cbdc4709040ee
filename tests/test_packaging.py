"""The wheel must contain every subpackage and the shipped data (an editable install hides gaps)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_module():
    spec = importlib.util.spec_from_file_location("_edgenas_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    captured = {}
    import setuptools

    real = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        spec.loader.exec_module(module)
    finally:
        setuptools.setup = real
    return module, captured


def test_every_subpackage_is_discovered():
    module, kwargs = _setup_module()
    listed = set(kwargs["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "edgenas").rglob("__init__.py")}
    assert found <= listed, f"not installed: {sorted(found - listed)}"
    assert {"edgenas.search.strategies", "edgenas.hardware", "edgenas.standalone", "edgenas.cli"} <= listed
    for name, folder in module.DATA_PACKAGES.items():
        assert name in listed and kwargs["package_dir"][name] == folder
        assert (ROOT / folder).is_dir(), folder
        # A data package must not share its dotted name with a module.
        assert not (ROOT / (name.replace(".", "/") + ".py")).exists(), name
    assert any((ROOT / "latency_tables").glob("*.json"))


def test_no_package_is_shadowed_by_a_module():
    for init in (ROOT / "edgenas").rglob("__init__.py"):
        assert not init.parent.with_suffix(".py").exists(), f"{init.parent} and a module of the same name"

