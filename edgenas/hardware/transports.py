"""Transports: how edgenas reaches a device to copy files and run commands there.

One small interface, three implementations:

- :class:`LocalTransport`: this machine; commands run as subprocesses.
- :class:`SshTransport`: a Linux board (Jetson, Raspberry Pi) through the
  OpenSSH client: ``ssh`` runs commands, a tar stream over ``ssh`` copies a
  folder to the device, ``ssh ... cat`` copies a file back.
- :class:`AdbTransport`: an Android phone through ``adb`` (``shell``, ``push``,
  ``pull``).

Commands are always argument lists.  ssh and ``adb shell`` hand the remote side
a single command line, so the list is quoted with :func:`shlex.join`; user
values (paths, hosts, file names) are never pasted into a shell string.  Every
failure raises :class:`~edgenas.errors.DeviceError` with the command's last
lines of stderr.
"""

from __future__ import annotations

import io
import os
import posixpath
import shlex
import shutil
import subprocess
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import DeviceCommandError, DeviceTimeoutError, DeviceUnreachableError
from edgenas.hardware.devices import Device

__all__ = ["AdbTransport", "LocalTransport", "SshTransport", "Transport", "make_transport"]


@dataclass(frozen=True)
class Completed:
    """What a command left behind."""

    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes = b""  # stdout exactly as received (binary-safe)


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _execute(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float | None = None,
    stdin: bytes | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
    check: bool = True,
    unreachable_exit: int | None = None,
) -> Completed:
    """Run ``argv`` locally; stream stderr lines to ``on_stderr_line``.  Raises :class:`DeviceUnreachableError`
    when the program is missing (or exits with ``unreachable_exit``: ssh's 255 is a connection failure),
    :class:`DeviceTimeoutError` past ``timeout`` and :class:`DeviceCommandError` on another non-zero exit."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise DeviceUnreachableError(f"{what}: '{argv[0]}' is not installed or not on PATH") from None
    import threading

    out_chunks: list[bytes] = []
    err_lines: list[str] = []

    def read_stdout() -> None:
        out_chunks.append(proc.stdout.read())

    def read_stderr() -> None:
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            if on_stderr_line is not None and line.startswith("edgenas-progress "):
                on_stderr_line(line)
            else:
                err_lines.append(line)

    readers = [threading.Thread(target=read_stdout), threading.Thread(target=read_stderr)]
    for t in readers:
        t.start()
    if stdin is not None:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise DeviceTimeoutError(f"{what}: no answer within {timeout:g} s") from None
    finally:
        for t in readers:
            t.join()
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None and not stream.closed:
                stream.close()
    raw = b"".join(out_chunks)
    result = Completed(proc.returncode, raw.decode(errors="replace"), "\n".join(err_lines), raw)
    if check and result.returncode != 0:
        detail = _tail(result.stderr) or _tail(result.stdout) or "no output"
        if unreachable_exit is not None and result.returncode == unreachable_exit:
            raise DeviceUnreachableError(f"{what}: the device cannot be reached (exit {result.returncode}): {detail}")
        raise DeviceCommandError(f"{what} failed (exit {result.returncode}): {detail}", result.returncode)
    return result


class Transport(ABC):
    """Reach one device: run argument lists there, copy a folder to it, copy a file back.

    ``workdir`` is the device-side folder edgenas works in (created on demand).
    """

    def __init__(self, device: Device) -> None:
        self.device = device

    @property
    def workdir(self) -> str:
        return self.device.workdir

    def path(self, *parts: str) -> str:
        """A path on the device, below :attr:`workdir`."""
        return posixpath.join(self.workdir, *parts)

    @abstractmethod
    def run(
        self, argv: Sequence[str], *, timeout: float | None = None, on_progress: Callable[[str], None] | None = None
    ) -> Completed:
        """Run ``argv`` on the device; raise DeviceError if it fails."""

    @abstractmethod
    def push_dir(self, local_dir: Path, remote_dir: str) -> None:
        """Copy the files of ``local_dir`` (recursively) into ``remote_dir`` on the device."""

    @abstractmethod
    def pull(self, remote_path: str, local_path: Path) -> None:
        """Copy one file from the device."""

    def python(self) -> str:
        return self.device.python or "python3"


class LocalTransport(Transport):
    """This machine.  The working folder is ``device.workdir`` unless given."""

    def __init__(self, device: Device, workdir: str | None = None) -> None:
        super().__init__(device)
        self._workdir = workdir

    @property
    def workdir(self) -> str:
        return self._workdir or self.device.workdir

    def python(self) -> str:
        import sys

        return self.device.python or sys.executable

    def run(self, argv, *, timeout=None, on_progress=None) -> Completed:
        return _execute(argv, what=f"{argv[0]} on {self.device.name}", timeout=timeout, on_stderr_line=on_progress)

    def push_dir(self, local_dir: Path, remote_dir: str) -> None:
        if Path(local_dir).resolve() == Path(remote_dir).resolve():
            return
        shutil.copytree(local_dir, remote_dir, dirs_exist_ok=True)

    def pull(self, remote_path: str, local_path: Path) -> None:
        if Path(remote_path).resolve() == Path(local_path).resolve():
            return
        if not Path(remote_path).is_file():
            raise DeviceCommandError(f"{self.device.name}: {remote_path} was not written")
        shutil.copyfile(remote_path, local_path)


#: The exit status of the OpenSSH client when it cannot connect (the remote command's own status otherwise).
SSH_UNREACHABLE = 255


class SshTransport(Transport):
    """A Linux device over the OpenSSH client (key-based, non-interactive)."""

    def _base(self) -> list[str]:
        user, host, port = self.device.ssh_target()
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-p", str(port)]
        if self.device.identity_file:
            argv += ["-i", os.path.expanduser(self.device.identity_file)]
        for option in self.device.ssh_options:
            argv += ["-o", option]
        argv.append(f"{user}@{host}" if user else host)
        return argv

    def run(self, argv, *, timeout=None, on_progress=None) -> Completed:
        return _execute(
            [*self._base(), "--", shlex.join(argv)],
            what=f"{argv[0]} on {self.device.name} ({self.device.transport})",
            timeout=timeout,
            on_stderr_line=on_progress,
            unreachable_exit=SSH_UNREACHABLE,
        )

    def push_dir(self, local_dir: Path, remote_dir: str) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(Path(local_dir).rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(local_dir)))
        command = shlex.join(["mkdir", "-p", remote_dir]) + " && " + shlex.join(["tar", "-xf", "-", "-C", remote_dir])
        _execute(
            [*self._base(), "--", command],
            what=f"copying files to {self.device.name} ({self.device.transport})",
            stdin=buffer.getvalue(),
            unreachable_exit=SSH_UNREACHABLE,
        )

    def pull(self, remote_path: str, local_path: Path) -> None:
        result = _execute(
            [*self._base(), "--", shlex.join(["cat", remote_path])],
            what=f"copying {remote_path} from {self.device.name}",
            unreachable_exit=SSH_UNREACHABLE,
        )
        from edgenas.files import atomic_write_bytes

        atomic_write_bytes(local_path, result.stdout_bytes)  # byte for byte: models and arrays pull intact


class AdbTransport(Transport):
    """An Android device over adb."""

    def _base(self) -> list[str]:
        return [self.device.adb, "-s", self.device.adb_serial()]

    def run(self, argv, *, timeout=None, on_progress=None) -> Completed:
        return _execute(
            [*self._base(), "shell", shlex.join(argv)],
            what=f"{posixpath.basename(argv[0])} on {self.device.name} ({self.device.transport})",
            timeout=timeout,
            on_stderr_line=on_progress,
        )

    def push_dir(self, local_dir: Path, remote_dir: str) -> None:
        self.run(["mkdir", "-p", remote_dir])
        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                target = posixpath.join(remote_dir, *path.relative_to(local_dir).parts)
                if len(path.relative_to(local_dir).parts) > 1:
                    self.run(["mkdir", "-p", posixpath.dirname(target)])
                _execute([*self._base(), "push", str(path), target], what=f"adb push to {self.device.name}")

    def pull(self, remote_path: str, local_path: Path) -> None:
        _execute([*self._base(), "pull", remote_path, str(local_path)], what=f"adb pull from {self.device.name}")


def make_transport(device: Device, local_workdir: str | None = None) -> Transport:
    """The transport of ``device`` (its ``transport`` field)."""
    if device.kind == "local":
        return LocalTransport(device, local_workdir)
    if device.kind == "ssh":
        return SshTransport(device)
    return AdbTransport(device)
