"""edgenas: hardware-aware multi-objective neural architecture search for edge devices."""

__version__ = "0.1.0"
