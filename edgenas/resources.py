"""Where the data shipped with edgenas lives (latency tables, device descriptions).

One resolver for a source checkout and an installed package alike: the
top-level ``latency_tables/`` and ``devices/`` folders of the checkout are
installed as ``edgenas/_data/latency_tables`` and ``edgenas/_data/devices``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_dir"]

_KINDS = ("latency_tables", "devices")


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``latency_tables`` or ``devices``."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind of shipped data {kind!r}; expected one of {', '.join(_KINDS)}")
    package = Path(__file__).resolve().parent
    root = package.parent
    if (root / "pyproject.toml").is_file() and (root / kind).is_dir():  # a source checkout
        return root / kind
    return package / "_data" / kind
