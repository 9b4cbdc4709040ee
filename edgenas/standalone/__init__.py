"""Code that runs *on the device*: the profiling agent and the bundle runner. Each module needs only the
standard library, numpy and a runtime, never edgenas itself (tests/test_layers.py checks their imports): they
are copied to the device as single files.
"""
