#!/usr/bin/env python3
"""Run an edgenas bundle: classify images or time the model, with numpy and one runtime only.

This file is copied into every exported bundle as ``run.py``.  It needs numpy
and ONNX Runtime (for ``.onnx``) or ai-edge-litert (for ``.tflite``; the older
tflite_runtime is used if that is all the device has).  It never imports
edgenas or torch.

    python run.py IMAGE [IMAGE ...]      classify images (.npy, .pgm, .ppm; other formats need Pillow)
    python run.py --check                classify the bundle's sample images and compare with their labels
    python run.py --time [--runs 100]    time one inference (median and 90th percentile, ms)

Options: ``--model FILE`` (default: the bundle's default model), ``--threads N``
(default 1), ``--json`` (one JSON object on stdout instead of text).

Images are scaled to [0, 1] (8-bit inputs are divided by 255, 16-bit by
65535), centre-cropped to a square (the central min(H, W) pixels), resized
(bilinear, antialiased when shrinking) to the model's input size, normalised
with the training mean and std from ``metadata.json``, and laid out as the model
expects (NCHW for ONNX, NHWC for TFLite): the same rule the search trained with
(``metadata.json`` -> ``preprocessing``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def required_correct(n: int, accuracy) -> int:
    """Fewest of ``n`` samples a working model classifies correctly: three binomial standard deviations below what
    the accuracy measured at export predicts (at least 1; more than chance where no accuracy is recorded)."""
    if not isinstance(accuracy, (int, float)) or not 0 < accuracy <= 1:
        return 1
    mean = n * accuracy
    return max(1, int(math.floor(mean - 3 * math.sqrt(n * accuracy * (1 - accuracy)) - 1e-9)))


def load_metadata() -> dict:
    with open(os.path.join(HERE, "metadata.json")) as f:
        return json.load(f)


# ------------------------------------------------------------------ images
def read_image(path: str) -> np.ndarray:
    """An image as float32 H x W x C in [0, 1]."""
    lower = path.lower()
    if lower.endswith(".npy"):
        x = np.load(path, allow_pickle=False)
    elif lower.endswith((".pgm", ".ppm")):
        x = _read_netpbm(path)
    else:
        try:
            from PIL import Image
        except ImportError:
            raise SystemExit(f"run.py: {path}: reading this format needs Pillow (pip install pillow); "
                             ".npy, .pgm and .ppm work without it") from None
        with Image.open(path) as img:
            if img.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr", "1"):
                img = img.convert("RGB")
            x = np.asarray(img)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise SystemExit(f"run.py: {path}: expected an H x W or H x W x C image, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / (65535.0 if x.max(initial=0) > 255 else 255.0)
    x = x.astype(np.float32)
    return x / 255.0 if x.max(initial=0) > 1.0 else x


def _read_netpbm(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    tokens, pos = [], 0
    while len(tokens) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        tokens.append(data[pos:end])
        pos = end
    magic, width, height, maxval = tokens[0], int(tokens[1]), int(tokens[2]), int(tokens[3])
    channels = {b"P5": 1, b"P6": 3}.get(magic)
    if channels is None:
        raise SystemExit(f"run.py: {path}: only binary PGM (P5) and PPM (P6) are supported")
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    pixels = np.frombuffer(data, dtype=dtype, count=width * height * channels, offset=pos + 1)
    return (pixels.reshape(height, width, channels).astype(np.float32) / maxval)


def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """n_out x n_in bilinear weights with half-pixel centres; antialiased (a triangle of the scale's width) when
    shrinking, as torch's interpolate(antialias=True) and Pillow's resize do."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    taps = np.arange(n_in)
    w = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centres[:, None]) / support)
    if scale <= 1.0:  # enlarging: plain bilinear, edges clamped
        w = np.zeros((n_out, n_in))
        pos = np.clip(centres, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = pos - lo
        w[np.arange(n_out), lo] += 1 - frac
        w[np.arange(n_out), hi] += frac
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def centre_crop(x: np.ndarray) -> np.ndarray:
    """H x W x C to its central min(H, W) square."""
    h, w = x.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[top : top + side, left : left + side]


def resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """H x W x C to size x size x C, bilinear (antialiased when shrinking)."""
    h, w = x.shape[:2]
    if (h, w) == (size, size):
        return x.astype(np.float32)
    wy, wx = _resize_weights(h, size), _resize_weights(w, size)
    return np.einsum("ih,hwc,jw->ijc", wy, x.astype(np.float32), wx).astype(np.float32)


def preprocess(image: np.ndarray, meta: dict) -> np.ndarray:
    """H x W x C in [0, 1] to one normalised NHWC sample."""
    channels, size = meta["input"]["channels"], meta["input"]["resolution"]
    if image.shape[2] != channels:
        if channels == 1:
            image = image[:, :, :3].mean(axis=2, keepdims=True)
        elif image.shape[2] == 1:
            image = np.repeat(image, channels, axis=2)
        else:
            image = image[:, :, :channels]
    image = resize_bilinear(centre_crop(image), size)
    mean = np.asarray(meta["normalization"]["mean"], dtype=np.float32)
    std = np.asarray(meta["normalization"]["std"], dtype=np.float32)
    return ((image - mean) / std)[None].astype(np.float32)


# ------------------------------------------------------------------ models
class OnnxModel:
    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def __call__(self, nhwc: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})[0]


class TfliteModel:
    def __init__(self, path: str, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            from tflite_runtime.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, nhwc: np.ndarray) -> np.ndarray:
        x = nhwc
        scale, zero = self.input.get("quantization", (0.0, 0))
        if np.issubdtype(self.input["dtype"], np.integer) and scale:
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output.get("quantization", (0.0, 0))
        if np.issubdtype(y.dtype, np.integer) and scale:
            y = (y.astype(np.float32) - zero) * scale
        return y.reshape(y.shape[0], -1)


def open_model(path: str, threads: int):
    return TfliteModel(path, threads) if path.endswith(".tflite") else OnnxModel(path, threads)


def _installed(runtime: str) -> bool:
    try:
        __import__(runtime)
    except ImportError:
        return False
    return True


def default_model(meta: dict) -> str:
    """The bundle's preferred model whose runtime is installed."""
    for name in meta["default_models"]:
        runtimes = ("onnxruntime",) if name.endswith(".onnx") else ("ai_edge_litert", "tflite_runtime")
        if any(_installed(runtime) for runtime in runtimes):
            return name
    raise SystemExit("run.py: no runtime for this bundle's models: pip install onnxruntime (for .onnx) or "
                     "ai-edge-litert (for .tflite)")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ commands
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*")
    parser.add_argument("--model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    meta = load_metadata()
    name = args.model or default_model(meta)
    path = name if os.path.isabs(name) else os.path.join(HERE, name)
    if not os.path.isfile(path):
        raise SystemExit(f"run.py: no model {name} in this bundle; it has: {', '.join(meta['files'])}")
    model = open_model(path, args.threads)
    labels = meta["labels"]
    if args.time:
        x = np.zeros((1, meta["input"]["resolution"], meta["input"]["resolution"], meta["input"]["channels"]),
                     dtype=np.float32)
        for _ in range(args.warmup):
            model(x)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
        result = {"model": name, "runs": args.runs, "median_ms": float(np.median(times)),
                  "p90_ms": float(np.percentile(times, 90))}
        print(json.dumps(result) if args.json else
              f"{name}: median {result['median_ms']:.3f} ms, p90 {result['p90_ms']:.3f} ms over {args.runs} runs")
        return 0
    if args.check:
        samples = np.load(os.path.join(HERE, "samples.npz"), allow_pickle=False)
        images, expected = samples["images"], samples["labels"]
        predicted = [int(model(preprocess(img, meta)).argmax()) for img in images]
        correct = int(np.sum(np.asarray(predicted) == expected))
        needed = required_correct(len(expected), (meta.get("accuracy") or {}).get(name))
        result = {"model": name, "samples": len(expected), "correct": correct, "accuracy": correct / len(expected),
                  "needed": needed, "ok": correct >= needed}
        print(json.dumps(result) if args.json else
              f"{name}: {correct}/{len(expected)} sample images classified correctly (at least {needed} expected "
              "from the accuracy measured at export)")
        return 0 if correct >= needed else 1
    if not args.images:
        parser.error("give image files, or --check, or --time")
    out = []
    for image_path in args.images:
        probs = softmax(model(preprocess(read_image(image_path), meta))[0])
        k = int(probs.argmax())
        out.append({"image": image_path, "label": labels[k], "class": k, "probability": float(probs[k])})
        if not args.json:
            print(f"{image_path}: {labels[k]} ({100 * probs[k]:.1f}%)")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
