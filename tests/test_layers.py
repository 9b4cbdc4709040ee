"""The layering of ARCHITECTURE.md, checked on the source: no module imports from a layer below its own, and the
standalone device-side scripts import nothing of edgenas."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edgenas"
LAYERS = [
    {"errors", "files", "resources", "defaults", "logs", "__init__"},
    {"space"},
    {"nn"},
    {"hardware"},
    {"search"},
    {"export"},
    {"cli", "__main__", "devtools"},
]
STANDALONE = {"standalone"}


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    return next((i for i, names in enumerate(LAYERS) if top in names), None)


def edgenas_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgenas"):
            rest = node.module[len("edgenas"):].lstrip(".")
            out |= {rest} if rest else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name[len("edgenas."):] for a in node.names if a.name.startswith("edgenas.")}
    return out


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.parts[0] == "_data":
            continue
        yield ".".join(rel.parts), path


def test_every_module_has_a_layer():
    missing = [name for name, _ in modules() if layer_of(name) is None and name.split(".")[0] not in STANDALONE]
    assert not missing, f"add to ARCHITECTURE.md and LAYERS: {missing}"


@pytest.mark.parametrize("name, path", list(modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_no_module_imports_from_a_lower_layer(name, path):
    if name.split(".")[0] in STANDALONE:
        return
    own = layer_of(name)
    below = {m for m in edgenas_imports(path) if m and layer_of(m) is not None and layer_of(m) > own}
    assert not below, f"{name} (layer {own}) imports {below} from a lower layer"


@pytest.mark.parametrize("name", ["agent", "bundle_runner"])
def test_device_side_scripts_are_standalone(name):
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "PIL"}
    imported = set()
    for node in ast.walk(ast.parse((PACKAGE / "standalone" / f"{name}.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported and not imported - allowed, imported - allowed
