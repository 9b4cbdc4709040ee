"""Where the data shipped with edgenas lives (latency tables, device descriptions, tabular benchmark data).

One resolver for a source checkout and an installed package alike: the
top-level ``latency_tables/``, ``devices/`` and ``benchmarks/data/`` folders of
the checkout are installed as ``edgenas/_data/latency_tables``,
``edgenas/_data/devices`` and ``edgenas/_data/benchmark_data``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_dir"]

#: Each kind of shipped data and its folder in a source checkout.
_KINDS = {"latency_tables": "latency_tables", "devices": "devices", "benchmark_data": "benchmarks/data"}


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``latency_tables``, ``devices`` or ``benchmark_data``."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind of shipped data {kind!r}; expected one of {', '.join(_KINDS)}")
    package = Path(__file__).resolve().parent
    root = package.parent
    if (root / "pyproject.toml").is_file() and (root / _KINDS[kind]).is_dir():  # a source checkout
        return root / _KINDS[kind]
    return package / "_data" / kind
