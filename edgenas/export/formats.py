"""The export formats, one record each (:class:`ExportFormat`): file suffix, the runtime that runs it, the shipped
device that times it on this machine, how a model file is written, and how closely its fp32 outputs must match
torch.  ``edgenas export --formats`` takes the registered names; :func:`register_format` adds one.

A new format also needs a loader in :func:`edgenas.standalone.bundle_runner.open_model` (the bundle's runner) and,
to be profiled, its timing loop in the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import ExportError, MissingExtraError
from edgenas.space.cost import Precision

__all__ = ["ExportFormat", "get_format", "list_formats", "parse_formats", "register_format"]


@dataclass(frozen=True)
class ExportFormat:
    """One way to ship a network.

    ``write(model, input_shape, target, precision, calibration, fp32_file)`` writes ``target`` (an int8 writer may
    start from the member's fp32 file of this format, written first).  ``check(model, target, inputs)`` is a
    structural or numerical check of an fp32 file beyond the generic one (raise to reject it).  ``fp32_tolerance``
    is the largest output difference from torch, over the validation images, that an fp32 file may have.
    ``requires`` names the ``(module, pip package)`` pairs the writer needs, from the ``extra``."""

    name: str
    suffix: str
    runtime: str
    local_device: str
    layout: str
    write: Callable[..., None]
    fp32_tolerance: float
    check: Callable[..., None] | None = None
    requires: tuple[tuple[str, str], ...] = ()
    extra: str | None = None

    def file_name(self, precision: Precision) -> str:
        return f"model.{precision.value}{self.suffix}"

    def require(self) -> None:
        """Fail early, before any work, when the writer's extra is missing (without importing it: that is slow)."""
        from importlib.util import find_spec

        for module, package in self.requires:
            if find_spec(module) is None:
                raise MissingExtraError(package, self.extra or "", f"{self.name} export")


_FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat, *, replace: bool = False) -> ExportFormat:
    """Make ``fmt`` available to ``edgenas export --formats``; a name already registered is refused unless
    ``replace``."""
    if fmt.name in _FORMATS and not replace:
        raise ValueError(f"export format {fmt.name!r} is registered already (pass replace=True to replace it)")
    _FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> ExportFormat:
    try:
        return _FORMATS[name]
    except KeyError:
        raise ExportError(f"unknown export format {name!r}; choose from {', '.join(_FORMATS)}") from None


def list_formats() -> list[ExportFormat]:
    return list(_FORMATS.values())


def parse_formats(text: str | Sequence[str]) -> tuple[ExportFormat, ...]:
    """``onnx,tflite`` (or a list of names) as registered formats, in order, each once."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = [n for n in names if n not in _FORMATS]
    if unknown or not names:
        raise ExportError(f"unknown export format(s) {', '.join(unknown) or '(none)'}; choose from "
                          f"{', '.join(_FORMATS)}, e.g. --formats onnx,tflite")
    return tuple(_FORMATS[n] for n in dict.fromkeys(names))


def format_for_runtime(runtime: str) -> ExportFormat | None:
    """The format a device runtime runs (None if no registered format does)."""
    return next((f for f in _FORMATS.values() if f.runtime == runtime), None)


# ------------------------------------------------------------------ shipped
def _write_onnx(model, shape, target: Path, precision: Precision, calibration, fp32_file: Path) -> None:
    import onnx

    from edgenas.hardware.opmodels import quantize_onnx_int8
    from edgenas.nn.model import export_onnx

    if precision is Precision.FP32:
        export_onnx(model, shape, target, dynamo=True)
    else:  # ONNX Runtime's static QDQ quantization of the fp32 file
        quantize_onnx_int8(fp32_file, target, calibration)
    onnx.checker.check_model(str(target))


def _check_onnx(model, target: Path, inputs) -> None:
    from edgenas.nn.model import onnx_matches_torch

    onnx_matches_torch(model, target, inputs[:16])  # raises beyond 1e-4


def _write_tflite(model, shape, target: Path, precision: Precision, calibration, fp32_file: Path) -> None:
    from edgenas.hardware.opmodels import write_tflite_model

    write_tflite_model(model, shape, target, precision, calibration)


ONNX = register_format(ExportFormat(
    "onnx", ".onnx", "onnxruntime", "local-ort", "NCHW", _write_onnx, fp32_tolerance=1e-3, check=_check_onnx))
TFLITE = register_format(ExportFormat(
    "tflite", ".tflite", "litert", "local-litert", "NHWC", _write_tflite, fp32_tolerance=1e-3,
    requires=(("litert_torch", "litert-torch"), ("ai_edge_quantizer", "ai-edge-quantizer"),
              ("ai_edge_litert", "ai-edge-litert")), extra="tflite"))
