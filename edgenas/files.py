"""Reading user-supplied structured files (YAML, TOML, JSON) with one clear error per problem; atomic writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from edgenas.errors import EdgenasError

__all__ = ["atomic_write_bytes", "atomic_write_text", "read_structured"]

_FORMATS = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".json": "JSON"}


def read_structured(path: str | Path, what: str, error: type[EdgenasError], formats: tuple[str, ...]) -> Any:
    """Parse the file at ``path`` (``what`` names it in messages, e.g. "space file").

    ``formats`` lists the accepted suffixes.  Missing, unreadable or malformed
    files raise ``error`` with one line naming the file and the problem.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise error(f"{what} {path}: unknown format '{suffix}'; use {', '.join(formats)}")
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
    kind = _FORMATS[suffix]
    try:
        if kind == "YAML":
            import yaml

            return yaml.safe_load(text)
        if kind == "TOML":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10 only
                import tomli as tomllib
            return tomllib.loads(text)
        return json.loads(text)
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{what} {path} is not valid {kind}: {first}") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see the old or the new file whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
