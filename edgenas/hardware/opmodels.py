"""Model files for timing: single ops and whole networks, at fp32 or int8.

Profiling times every op of a space as its own small model, and validation
times whole networks; both are written here, in the runtime's format and at
the precision that will be deployed:

- ONNX fp32: the torch ONNX exporter (the TorchScript path, ~15x faster than
  the dynamo path; after ONNX Runtime's graph fusions both run the same kernels).
- ONNX int8: ``quant_pre_process`` then ``quantize_static`` in QDQ format with
  per-channel int8 weights (7-bit range, ``reduce_range``) and uint8
  activations, calibrated with min-max on sample inputs: exactly how the
  exporter quantizes deployed models.  Without ``reduce_range``, x86 CPUs
  without VNNI saturate the uint8 x int8 products: on this machine (AVX2)
  front members lost up to 5 accuracy points, and none with it.
- TFLite fp32: litert-torch, with the input (and a 4-D output) in NHWC layout,
  as TFLite deployments feed images.
- TFLite int8: ai-edge-quantizer's static int8 recipe (int8 weights and
  activations) with min-max calibration (its default moving average clips
  ranges).

TFLite needs the ``tflite`` extra; without it a :class:`MissingExtraError`
says how to install it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgenas.errors import MissingExtraError
from edgenas.nn.model import build_op, export_onnx
from edgenas.space.cost import Precision
from edgenas.space.ops import OpKey

__all__ = ["MODEL_SUFFIX", "op_input_shape", "write_model", "write_onnx_model", "write_tflite_model"]

MODEL_SUFFIX = {"onnxruntime": ".onnx", "litert": ".tflite"}


def op_input_shape(key: OpKey) -> tuple[int, int, int]:
    return key.cin, key.in_h, key.in_w


def quantize_onnx_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray) -> Path:
    """Static QDQ int8 quantization (per-channel 7-bit int8 weights, uint8 activations, min-max calibration)."""
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    import onnx

    name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # quantization logs hints at INFO/WARNING for every model
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(int8_path),
                Reader(name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
    finally:
        logger.setLevel(level)
    return int8_path


def write_onnx_model(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    precision: Precision | str,
    calibration: np.ndarray | None = None,
    dynamo: bool = False,
) -> Path:
    """Write ``model`` as ONNX at ``precision``; int8 is calibrated on ``calibration`` (N x C x H x W)."""
    precision = Precision(precision)
    path = Path(path)
    if precision is Precision.FP32:
        return export_onnx(model, input_shape, path, dynamo=dynamo)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, input_shape, Path(tmp) / "fp32.onnx", dynamo=dynamo)
        path.parent.mkdir(parents=True, exist_ok=True)
        return quantize_onnx_int8(fp32, path, _calibration(input_shape, calibration))


def _calibration(input_shape: Sequence[int], calibration: np.ndarray | None) -> np.ndarray:
    if calibration is None:
        calibration = np.random.default_rng(0).standard_normal((8, *input_shape))
    return np.asarray(calibration, dtype=np.float32)


def write_tflite_model(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    precision: Precision | str,
    calibration: np.ndarray | None = None,
) -> Path:
    """Write ``model`` as TFLite (NHWC input) at ``precision``; int8 is calibrated on ``calibration`` (NCHW)."""
    import logging
    import os
    import warnings

    precision = Precision(precision)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    c, h, w = input_shape
    out_ndim = model(torch.zeros(1, c, h, w)).ndim
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    show_progress = None
    try:
        # litert-torch's import and the converter's C++ passes write to the process's stderr.
        os.dup2(devnull, 2)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                import litert_torch
            except ImportError:
                raise MissingExtraError("litert-torch", "tflite", "TFLite conversion") from None
            show_progress = litert_torch.config.show_progress
            litert_torch.config.show_progress = False
            wrapped = litert_torch.to_channel_last_io(model, args=[0], outputs=[0] if out_ndim == 4 else [])
            edge = litert_torch.convert(wrapped, (torch.zeros(1, h, w, c),))
            if precision is Precision.FP32:
                edge.export(str(path))
                return path
            with tempfile.TemporaryDirectory() as tmp:
                fp32 = Path(tmp) / "fp32.tflite"
                edge.export(str(fp32))
                _quantize_tflite_int8(fp32, path, _calibration(input_shape, calibration).transpose(0, 2, 3, 1))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        logger.setLevel(level)
        if show_progress is not None:
            litert_torch.config.show_progress = show_progress
    return path


def _quantize_tflite_int8(fp32_path: Path, int8_path: Path, calibration_nhwc: np.ndarray) -> None:
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import calibrator, quantizer, recipe, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils
    except ImportError:
        raise MissingExtraError("ai-edge-quantizer", "tflite", "TFLite int8 quantization") from None
    buffer = fp32_path.read_bytes()
    interpreter = Interpreter(model_content=buffer)
    signature, details = next(iter(interpreter.get_signature_list().items()))
    input_name = details["inputs"][0]
    rec = recipe.static_wi8_ai8()
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rec)
    calib = calibrator.Calibrator(buffer, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate({signature: [{input_name: calibration_nhwc[i : i + 1]} for i in range(len(calibration_nhwc))]}, manager)
    quant = quantizer.Quantizer(buffer, rec)
    quant.quantize(calib.get_model_qsvs(), enable_progress_report=False).export_model(str(int8_path), overwrite=True)


def write_model(
    runtime: str,
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    precision: Precision | str,
    calibration: np.ndarray | None = None,
) -> Path:
    """Write ``model`` in the format of ``runtime`` (``onnxruntime`` or ``litert``) at ``precision``."""
    if runtime == "litert":
        return write_tflite_model(model, input_shape, path, precision, calibration)
    return write_onnx_model(model, input_shape, path, precision, calibration)


def write_op_model(key: OpKey, path: str | Path, precision: Precision | str, runtime: str = "onnxruntime", seed: int = 0) -> Path:
    """One op as a standalone model (random weights; latency does not depend on them)."""
    torch.manual_seed(seed)
    return write_model(runtime, build_op(key).eval(), op_input_shape(key), path, precision)
