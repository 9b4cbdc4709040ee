"""Where the data shipped with edgenas lives (latency tables, device descriptions).

One resolver for a source checkout and an installed package alike: the
top-level ``latency_tables/`` and ``devices/`` folders are installed as the
``edgenas.latency_tables`` and ``edgenas.devices`` package-data folders.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["shipped_dir"]

_KINDS = ("latency_tables", "devices")


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``latency_tables`` or ``devices``."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind of shipped data {kind!r}; expected one of {', '.join(_KINDS)}")
    checkout = Path(__file__).resolve().parent.parent / kind
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files(f"edgenas.{kind}")))
