"""Layer 5, export: bundles (int8/fp32 ONNX and TFLite models with metadata and a runner), deploy and verify.
"""
