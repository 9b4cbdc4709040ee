"""An emulated arm64 device: a Debian arm64 userland run under qemu-user, reached like a board.

::

    python -m edgenas.devtools.arm64 ROOT [--ssh [USER@]HOST[:PORT]] [--identity-file KEY]

builds, in ``ROOT`` (a folder of yours; nothing is installed system-wide):

1. Debian's arm64 ``python3.11`` and the libraries it and the runtimes need, fetched with ``apt-get download``
   through a private apt configuration (``ROOT/.apt``: this machine's package lists and ``dpkg`` state are not
   touched) and unpacked with ``dpkg-deb -x`` (no maintainer scripts run);
2. numpy, onnxruntime and ai-edge-litert aarch64 wheels from PyPI, installed with ``pip install --platform
   ... --target ROOT/usr/lib/python3/dist-packages``;
3. ``ROOT/bin/python3``: a launcher that runs that interpreter through ``qemu-aarch64-static -cpu cortex-a76 -L
   ROOT`` (binfmt_misc is not needed), with an arm64 ``/proc/cpuinfo`` of that CPU inside ROOT (the runtimes' CPU
   detection reads it; qemu serves paths from ROOT first);
4. device files in ``ROOT/devices/``: ``emulated-arm64-ort.yaml`` and ``emulated-arm64-litert.yaml`` (this machine's
   transport) and, with ``--ssh``, ``emulated-arm64-ssh-ort.yaml`` and ``emulated-arm64-ssh-litert.yaml`` (the same
   interpreter reached over ssh, the transport of a Raspberry Pi).

Running it again is cheap: a finished ROOT whose recipe has not changed is kept (``ROOT/.edgenas-arm64.json``);
downloaded packages and wheels are cached in ``ROOT/.apt`` and pip's cache.  What it needs here: Debian's
``qemu-user-static`` (``apt-get install qemu-user-static``), ``apt-get`` and ``dpkg-deb`` with the Debian archive
reachable, and pip reaching PyPI.

Timings under emulation describe *that* device (an arm64 userland translated by qemu on this CPU), not real ARM
silicon: use it to test that tables, the agent and bundles work on a foreign CPU architecture, Python and
runtime build, and that a device's own table ranks networks better than another device's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import BuildError, DeviceConfigError, EdgenasError
from edgenas.hardware.devices import device_from_dict

__all__ = ["Recipe", "build_userland", "cpuinfo_text", "device_files", "launcher_text", "main"]

#: The Debian release whose arm64 packages make the userland (its python3.11 matches the wheels' cp311 tag).
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

#: Debian arm64 packages of the userland: the interpreter, its standard library's shared libraries, and the C++
#: runtime the runtimes' wheels link against.  Their dependencies are resolved by apt (``apt-cache depends``).
PACKAGES = ("python3.11", "libstdc++6", "libgcc-s1")

#: Dependencies left out: programs a Python interpreter needs no part of (perl and the tools that pull it in).
EXCLUDED = frozenset({
    "dpkg", "tar", "perl", "perl-base", "perl-modules-5.36", "libperl5.36", "install-info", "mailcap",
    "mime-support", "media-types", "debconf", "debianutils",
})

#: PyPI packages installed as aarch64 wheels.
WHEELS = ("numpy", "onnxruntime", "ai-edge-litert")

PYTHON = "usr/bin/python3.11"
SITE = "usr/lib/python3/dist-packages"
STAMP = ".edgenas-arm64.json"


@dataclass(frozen=True)
class Recipe:
    """What a userland is built from; a ROOT built from the same recipe is kept as it is."""

    suite: str = SUITE
    mirror: str = MIRROR
    packages: tuple[str, ...] = PACKAGES
    wheels: tuple[str, ...] = WHEELS
    python_version: str = "3.11"

    def key(self) -> str:
        blob = json.dumps({"suite": self.suite, "mirror": self.mirror, "packages": list(self.packages),
                           "wheels": list(self.wheels), "python": self.python_version}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- pure parts (tested without qemu)


def cpuinfo_text(cpus: int) -> str:
    """An arm64 ``/proc/cpuinfo`` of ``cpus`` Cortex-A76 cores (the CPU the launcher asks qemu for).

    The runtimes' CPU detection (pytorch/cpuinfo inside onnxruntime) parses it and crashes on this machine's x86
    one; its features must be the emulated CPU's, or the runtimes pick instructions qemu then refuses."""
    block = (
        "processor\t: {i}\nBogoMIPS\t: 108.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
        "asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\n"
        "CPU revision\t: 1\n\n"
    )
    return "".join(block.format(i=i) for i in range(max(1, cpus)))


#: The CPU qemu emulates: the Raspberry Pi 5's core (Armv8.2-A with dot product).  Not qemu's default ``max``:
#: with it (SVE2, SME, i8mm...) XNNPACK's int8 kernels in ai-edge-litert 2.3.0 computed wrong outputs under
#: qemu 7.2 (a bundle's ``run.py --check`` got 2 of 20 images right against 14 of 20 on x86 and on this CPU).
QEMU_CPU = "cortex-a76"


def launcher_text(root: Path, qemu: str) -> str:
    """``ROOT/bin/python3``: the arm64 interpreter under qemu-user, isolated from this machine's Python settings.

    ``-E -s``: PYTHONPATH/PYTHONHOME of the caller (a venv, a test runner) must not put x86 packages on the path."""
    import shlex

    return (
        "#!/bin/sh\n"
        "# edgenas emulated arm64 device: Debian's arm64 python3.11 under qemu-user (generated; see\n"
        "# python -m edgenas.devtools.arm64 --help).\n"
        f"exec {shlex.quote(qemu)} -cpu {QEMU_CPU} -L {shlex.quote(str(root))} {shlex.quote(str(root / PYTHON))} "
        "-E -s \"$@\"\n"
    )


def device_files(root: Path, ssh: str | None = None, identity_file: str | None = None) -> dict[str, dict]:
    """The device descriptions of the emulated device: file name -> fields (see ``devices/README.md``)."""
    python = str(root / "bin" / "python3")
    common = {"threads": 1, "precisions": ["fp32", "int8"], "energy": "none", "python": python}
    what = "emulated arm64 (Debian arm64 Python under qemu-user on this machine)"
    out = {}
    transports = [("", "local", "this machine's transport")]
    if ssh:
        transports.append(("-ssh", f"ssh://{ssh}", f"over ssh ({ssh})"))
    for tag, transport, how in transports:
        for runtime, extra in (("ort", {"runtime": "onnxruntime", "execution_provider": "CPUExecutionProvider"}),
                               ("litert", {"runtime": "litert", "delegate": "xnnpack"})):
            name = f"emulated-arm64{tag}-{runtime}"
            fields = {"name": name, "description": f"{what}, {extra['runtime']}, 1 thread, {how}",
                      "transport": transport, **extra, **common}
            if tag:
                fields["workdir"] = "/tmp/edgenas-arm64"
                fields["ssh_options"] = ["StrictHostKeyChecking=accept-new"]
                if identity_file:
                    fields["identity_file"] = identity_file
            out[f"{name}.yaml"] = fields
    return out


def parse_depends(text: str) -> list[str]:
    """Package names from ``apt-cache depends --recurse`` output (top-level lines; ``<virtual>`` ones dropped)."""
    names = []
    for line in text.splitlines():
        if not line or line[0].isspace() or line.startswith("<"):
            continue
        name = line.strip().split(":", 1)[0]
        if re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name) and name not in names:
            names.append(name)
    return names


def relink_absolute_symlinks(root: Path) -> int:
    """Point the unpacked packages' absolute symlinks into ROOT (``/etc/x`` -> ``ROOT/etc/x``, as a relative link):
    the kernel, not qemu, follows symlinks, and would follow them out to this machine's own files."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames + filenames:
            link = Path(dirpath) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if not target.startswith("/"):
                continue
            inside = root / target.lstrip("/")
            link.unlink()
            link.symlink_to(os.path.relpath(inside, link.parent))
            count += 1
    return count


def wheel_platforms() -> list[str]:
    """pip ``--platform`` tags an arm64 bookworm (glibc 2.36) accepts."""
    return ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)]


# ----------------------------------------------------------------------------- the build


def _run(argv: Sequence[str], what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise BuildError(f"{what}: '{argv[0]}' is not installed") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: no result within 30 minutes") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if "is ignored" not in ln]
        raise BuildError(f"{what} failed (exit {done.returncode}): {' | '.join(lines[-3:]) or 'no output'}")
    return done.stdout


def _apt_options(apt: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", "Dir::Etc::SourceParts=-",
        "-o", f"Dir::Etc::Parts={apt / 'apt.conf.d'}", "-o", "Dir::Etc::Preferences=-",
        "-o", f"Dir::Etc::PreferencesParts={apt / 'preferences.d'}",
        "-o", f"Dir::State={apt}", "-o", f"Dir::State::Lists={apt / 'lists'}",
        "-o", f"Dir::State::Status={apt / 'status'}", "-o", f"Dir::Cache={apt / 'cache'}",
        "-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64", "-o", "Debug::NoLocking=1",
        *(["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []),  # root: no '_apt' download user
        "-q",
    ]


def find_qemu() -> str:
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None:
        raise BuildError("qemu-aarch64-static is not installed: install Debian's qemu-user-static "
                         "(apt-get install qemu-user-static) and run this again")
    return qemu


def build_userland(
    root: str | Path, *, ssh: str | None = None, identity_file: str | None = None, recipe: Recipe | None = None,
    log: Callable[[str], None] = print, force: bool = False,
) -> dict:
    """Build (or keep) the emulated arm64 userland in ``root``; returns its manifest (what ``ROOT/.edgenas-arm64.json``
    holds: versions, the launcher, the device files).  See the module docstring."""
    recipe = recipe or Recipe()
    root = Path(root).expanduser().resolve()
    if ssh is not None:  # the ssh device files are checked as every device file is, before anything is written
        try:
            for name, fields in device_files(root, ssh, identity_file).items():
                device_from_dict(fields, name)
        except DeviceConfigError:
            raise DeviceConfigError(f"--ssh {ssh!r} must be [user@]host[:port]") from None
    if root.exists() and not root.is_dir():
        raise BuildError(f"{root} exists and is not a folder: give a folder for the userland")
    if root.is_dir() and any(root.iterdir()) and not (root / STAMP).is_file() and not (root / ".apt").is_dir():
        # a build replaces ROOT/usr, ROOT/lib, ROOT/etc, ROOT/bin, ...: never in a folder that holds other things
        raise BuildError(f"{root} holds files that are not an emulated userland: give a new or empty folder")
    qemu = find_qemu()
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise BuildError(f"'{tool}' is not installed: the userland is built from Debian's arm64 packages")
    stamp = root / STAMP
    manifest = _read_manifest(stamp)
    if force or manifest.get("recipe") != recipe.key() or not (root / PYTHON).is_file():
        manifest = _build(root, recipe, qemu, log)
    else:
        log(f"{root}: userland up to date (recipe {recipe.key()})")
    # Cheap parts, refreshed every run: the launcher (qemu's path), cpuinfo (this machine's CPU count), devices.
    cpus = os.cpu_count() or 1
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(cpuinfo_text(cpus))
    launcher = root / "bin" / "python3"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text(launcher_text(root, qemu))
    launcher.chmod(0o755)
    devices = root / "devices"
    devices.mkdir(exist_ok=True)
    import yaml

    written = []
    for name, fields in device_files(root, ssh, identity_file).items():
        (devices / name).write_text(yaml.safe_dump(fields, sort_keys=False))
        written.append(str(devices / name))
    host = _probe(launcher)
    if host.get("machine") != "aarch64":
        raise BuildError(f"{launcher} runs but reports machine {host.get('machine')!r}, not aarch64")
    manifest.update(launcher=str(launcher), devices=written, host=host, cpus=cpus, qemu=qemu)
    stamp.write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"{launcher}: {host['machine']}, Python {host['python']}, numpy {host['numpy']}, onnxruntime "
        f"{host['onnxruntime']}, ai-edge-litert {host['litert']}")
    for path in written:
        log(f"device file {path}")
    return manifest


def _read_manifest(stamp: Path) -> dict:
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _probe(launcher: Path) -> dict:
    """Ask the emulated interpreter what it is and that every runtime imports (one process)."""
    code = (
        "import json, platform, numpy, onnxruntime, ai_edge_litert\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(),"
        " 'numpy': numpy.__version__, 'onnxruntime': onnxruntime.__version__,"
        " 'litert': getattr(ai_edge_litert, '__version__', 'unknown')}))\n"
    )
    out = _run([str(launcher), "-c", code], f"running {launcher}")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BuildError(f"{launcher} printed no description of itself: {out[-200:]!r}") from None


def _build(root: Path, recipe: Recipe, qemu: str, log: Callable[[str], None]) -> dict:
    apt = root / ".apt"
    for sub in ("lists/partial", "cache/archives/partial", "apt.conf.d", "preferences.d", "debs"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "status").touch()
    keyring = f" signed-by={KEYRING}" if Path(KEYRING).is_file() else ""
    security = SECURITY_MIRROR if recipe.mirror == MIRROR else recipe.mirror.rstrip("/") + "-security"
    (apt / "sources.list").write_text(
        f"deb [arch=arm64{keyring}] {recipe.mirror} {recipe.suite} main\n"
        f"deb [arch=arm64{keyring}] {recipe.mirror} {recipe.suite}-updates main\n"
        f"deb [arch=arm64{keyring}] {security} {recipe.suite}-security main\n"
    )
    options = _apt_options(apt)
    log(f"fetching Debian {recipe.suite} arm64 package lists into {apt}")
    _run(["apt-get", *options, "update"], "apt-get update (arm64 package lists)")
    depends = _run(["apt-cache", *options, "depends", "--recurse", "--no-recommends", "--no-suggests",
                    "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *recipe.packages],
                   "apt-cache depends")
    packages = [p for p in parse_depends(depends) if p not in EXCLUDED]
    debs = apt / "debs"
    log(f"downloading {len(packages)} arm64 packages")
    _run(["apt-get", *options, "download", *packages], "apt-get download", cwd=debs)
    # Unpack into a fresh tree (a changed recipe must not leave old files behind), then swap it in.
    for old in ("usr", "lib", "etc", "bin", "sbin", "var", "proc"):
        target = root / old
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
    versions = {}
    for deb in sorted(debs.glob("*.deb")):
        name, version = deb.name.split("_")[:2]
        if name not in packages:
            continue
        _run(["dpkg-deb", "-x", str(deb), str(root)], f"unpacking {deb.name}")
        versions[name] = version.replace("%3a", ":")
    relinked = relink_absolute_symlinks(root)
    if not (root / PYTHON).is_file():
        raise BuildError(f"the packages gave no {PYTHON}: is {recipe.suite}'s python{recipe.python_version} "
                         "among them?")
    log(f"unpacked {len(versions)} packages ({relinked} absolute symlinks pointed into {root})")
    site = root / SITE
    site.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in wheel_platforms() for arg in ("--platform", tag)]
    log(f"installing aarch64 wheels of {', '.join(recipe.wheels)} into {site}")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
          *platforms, "--python-version", recipe.python_version, "--implementation", "cp",
          "--abi", "cp" + recipe.python_version.replace(".", ""), "--upgrade", "--target", str(site),
          *recipe.wheels], "pip install (aarch64 wheels)")
    return {"recipe": recipe.key(), "suite": recipe.suite, "packages": versions}


# ----------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgenas.devtools.arm64",
        description="Build an emulated arm64 device (Debian arm64 Python + onnxruntime + ai-edge-litert under "
                    "qemu-user) in ROOT and write its device files to ROOT/devices/.",
        epilog="example: python -m edgenas.devtools.arm64 ~/edgenas-arm64 --ssh 127.0.0.1 && edgenas profile "
               "--device ~/edgenas-arm64/devices/emulated-arm64-ort.yaml --space tiny --resolution 8 --in-channels 1",
    )
    parser.add_argument("root", help="folder for the userland (created; kept and reused on later runs)")
    parser.add_argument("--ssh", metavar="[USER@]HOST[:PORT]",
                        help="also write device files that reach the userland over ssh (e.g. 127.0.0.1)")
    parser.add_argument("--identity-file", help="ssh key for those device files")
    parser.add_argument("--force", action="store_true", help="rebuild even if ROOT is up to date")
    args = parser.parse_args(argv)
    try:
        build_userland(args.root, ssh=args.ssh, identity_file=args.identity_file, force=args.force,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    except EdgenasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
