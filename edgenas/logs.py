"""The one default logger of long library calls (search, export, profiling): a line on stderr.

Library functions take ``log: Callable[[str], None]``; this is its default, and the CLI's.
"""

from __future__ import annotations

import sys

__all__ = ["stderr_log"]


def stderr_log(message: str) -> None:
    """``edgenas: MESSAGE`` on stderr."""
    print(f"edgenas: {message}", file=sys.stderr)
