"""The exceptions edgenas raises.

Every error a user can cause derives from :class:`EdgenasError`; the CLI turns
any of them into one line on stderr and a non-zero exit (``--debug`` shows the
traceback).  Programming errors inside edgenas are left as ordinary Python
exceptions.

::

    EdgenasError
     ├── SpaceError            a search-space definition (preset name or file) is invalid
     ├── ArchitectureError     an architecture string, genome or encoding is invalid
     │                         for its search space
     ├── DeviceError           a device problem, one of:
     │    ├── DeviceConfigError      the description is invalid or names no known device
     │    ├── DeviceUnreachableError the device or its tool (ssh, adb, python) cannot be reached
     │    ├── DeviceTimeoutError     a command on the device gave no answer in time
     │    └── DeviceCommandError     a command on the device failed (``returncode``) or left no result
     ├── TableError            a latency table is invalid, or does not match the space,
     │                         precision or task it is used for
     ├── DataError             a dataset cannot be read or is malformed
     ├── SearchError           a search run cannot start or resume (run folder, settings)
     ├── ExportError           a run cannot be exported (members, formats, output folder), or a
     │    │                    bundle cannot be read, deployed or verified
     │    └── ExportCheckError a built model does not round-trip through its runtime
     ├── MissingExtraError     an optional dependency group is not installed
     └── BuildError            a development tool cannot build what it was asked for (the emulated
                               arm64 device: a missing tool, an unreachable archive, a failed step)

``SpaceError`` and ``ArchitectureError`` are also ``ValueError``, ``DeviceTimeoutError`` is also a
``TimeoutError`` and ``DeviceUnreachableError`` a ``ConnectionError``, so that library users can catch them the
usual way.  Library messages name the problem in the library's terms; the CLI's flags appear only where a message
tells a CLI user what to type.
"""

from __future__ import annotations


class EdgenasError(Exception):
    """Base class of every error caused by input edgenas cannot accept."""


class SpaceError(EdgenasError, ValueError):
    """A search-space definition is invalid or cannot be found."""


class ArchitectureError(EdgenasError, ValueError):
    """An architecture does not parse or is not a member of its search space."""


class DeviceError(EdgenasError):
    """A device description is invalid, or the device cannot be reached or fails (see the subclasses)."""


class DeviceConfigError(DeviceError):
    """A device description is invalid, names no known device, or asks for what the device does not offer."""


class DeviceUnreachableError(DeviceError, ConnectionError):
    """The device, or the tool that reaches it (ssh, adb, its python), cannot be reached."""


class DeviceTimeoutError(DeviceError, TimeoutError):
    """A command on the device gave no answer within its time limit."""


class DeviceCommandError(DeviceError):
    """A command on the device failed or left no valid result; ``returncode`` is its exit status (None when it
    exited cleanly but its result is missing or unreadable)."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


class TableError(EdgenasError):
    """A latency table is invalid or does not fit the space, precision or task it is used with."""


class DataError(EdgenasError):
    """A dataset cannot be read, or its images or labels are malformed."""


class SearchError(EdgenasError):
    """A search cannot start or resume: run folder, settings or constraints."""


class ExportError(EdgenasError):
    """A run cannot be exported, or a bundle cannot be read, deployed or verified."""


class MissingExtraError(EdgenasError, ImportError):
    """An optional dependency is needed; the message says which extra to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{module}' package, which is not installed; "
            f"install it with: pip install 'edgenas[{extra}]'"
        )
        self.module = module
        self.extra = extra


class ExportCheckError(ExportError):
    """An exported model disagrees with the torch model it came from."""


class BuildError(EdgenasError):
    """A development tool (``edgenas.devtools``) cannot build what it was asked for."""
