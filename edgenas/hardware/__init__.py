"""Layer 3, hardware: devices and how to reach them (devices, transports), op micro-benchmarks (opmodels,
profile, benchmark_model), latency tables (tables), prediction (predict) and its checks (validate, drift).
"""
