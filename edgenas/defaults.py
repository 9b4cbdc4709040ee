"""Defaults shared by the library and the command line (kept free of heavy imports)."""

#: Optimizer steps every from-scratch candidate takes, at least (measured: README, benchmarks/own_data.py).
MIN_STEPS_DEFAULT = 200
