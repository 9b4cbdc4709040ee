"""Shared fixtures: small real spaces and architectures (no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec, get_space


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory):
    """Built model files are cached per test session, never in the user's cache."""
    import os

    os.environ["EDGENAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def micro_space() -> SearchSpace:
    """Small enough to enumerate every architecture (1,600 of them)."""
    return SearchSpace(
        name="micro",
        stem=StemSpec(16, 3, 1),
        stages=(
            StageSpec(16, 1, (1, 2), kernels=(3, 5), expansions=(3, 6)),
            StageSpec(24, 2, (1, 2), kernels=(3, 5), expansions=(3, 6)),
        ),
        head=HeadSpec(32),
        resolutions=(8, 16),
        widths=(0.5, 1.0),
    )


@pytest.fixture(params=["tiny", "small", "imagenet"])
def preset(request) -> SearchSpace:
    return get_space(request.param)


@pytest.fixture
def nano_space() -> SearchSpace:
    """One resolution, 15 distinct ops: small enough to profile in seconds."""
    return SearchSpace(
        name="nano",
        stem=StemSpec(8, 3, 1),
        stages=(
            StageSpec(8, 1, (1, 2), kernels=(3, 5), expansions=(3, 6)),
            StageSpec(16, 2, (1, 2), kernels=(3, 5), expansions=(3, 6)),
        ),
        head=HeadSpec(32),
        resolutions=(8,),
    )


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 with throw-away keys; yields how to reach it.

    Skipped where openssh-server is not installed, except in CI (CI=true), where
    .ci/run installs it and its absence is a failure.
    """
    import getpass
    import os
    import shutil
    import socket
    import subprocess
    import time

    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd_bin):
        if os.environ.get("CI"):
            pytest.fail("sshd is missing: .ci/run installs openssh-server for the ssh transport tests")
        pytest.skip("no sshd on this machine: install openssh-server to run the ssh transport tests")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    os.chmod(folder / "authorized_keys", 0o600)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                f"PidFile {folder / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "LogLevel ERROR",
            ]
        )
        + "\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"sshd did not start: {proc.stderr.read().decode(errors='replace')[-500:]}")
            time.sleep(0.1)
    yield {
        "user": getpass.getuser(),
        "port": port,
        "key": str(folder / "client_key"),
        "options": ("StrictHostKeyChecking=no", f"UserKnownHostsFile={folder / 'known_hosts'}"),
    }
    proc.terminate()
    proc.wait(timeout=10)
    proc.stderr.close()


@pytest.fixture(scope="session")
def search_setup(tmp_path_factory):
    """A two-stage space file for 8x8 digits and a real int8 table of this machine for it (1 channel, 10 classes)."""
    import yaml

    from edgenas.hardware.devices import get_device
    from edgenas.hardware.profile import MeasurementSettings, profile_device
    from edgenas.space.mbconv import HeadSpec, SearchSpace, StageSpec, StemSpec

    space = SearchSpace(
        name="digits-test", stem=StemSpec(8), head=HeadSpec(32), resolutions=(8,),
        stages=(StageSpec(8, 1, (1, 2), (3, 5), (3, 6)), StageSpec(16, 2, (1, 2), (3, 5), (3, 6))),
    )
    folder = tmp_path_factory.mktemp("search")
    space_file = folder / "space.yaml"
    space_file.write_text(yaml.safe_dump(space.to_dict()))
    table = folder / "table.json"
    profile_device(get_device("local-ort"), space, "int8", 1, 10, table,
                   MeasurementSettings(warmup_runs=2, rounds=2, runs_per_round=5, calibration_networks=2), quiet=True)
    return {"space": str(space_file), "table": str(table)}
