"""The scoring-node image of docker/ for the tests that run it: building it, running containers of it.

The image is built once per test session (the `node_image` fixture of conftest.py) with the
documented command, `bash docker/build.sh` (quick when the base image exists and Docker's layer
cache hits). Needs a Docker engine, and root the first time on a machine, when docker/make-base.sh
debootstraps the base image. Without an engine the tests are skipped, unless the environment
variable CI is set: then they fail.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("VMAFX_TEST_NODE_IMAGE", "vmafx-node:test")
BASE_IMAGE = "vmafx-base:bookworm"
NODE_UID = "10001"
CONFIG_PATH = "/etc/vmafx/rclone.conf"
#: hang guards only, never performance limits: a build from scratch takes a few minutes
BUILD_TIMEOUT = 1800
RUN_TIMEOUT = 600


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, but {reason}", pytrace=False)
    pytest.skip(reason)


def engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 60 s"
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"no Docker engine answers `docker info`: {proc.stderr.strip()[-300:]}"
    return None


def image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                          stdin=subprocess.DEVNULL).returncode == 0


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def build_node_image() -> str:
    """The image, built from this work tree by the documented command (skips or fails without an engine)."""
    problem = engine_problem()
    if problem:
        unavailable(problem)
    if os.geteuid() != 0 and not image_exists(BASE_IMAGE):
        unavailable(f"{BASE_IMAGE} does not exist and making it needs root: sudo bash docker/make-base.sh")
    env = {k: v for k, v in os.environ.items() if k not in ("BASE", "VMAFX_IMAGE")}
    env["PYTHON"] = sys.executable  # the test interpreter has pip; build.sh builds the wheels with it
    if os.environ.get("VMAFX_TEST_NODE_BASE"):
        env["BASE"] = os.environ["VMAFX_TEST_NODE_BASE"]
    try:
        proc = subprocess.run(["bash", str(REPO / "docker" / "build.sh"), "--tag", IMAGE], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"docker/build.sh did not finish within {BUILD_TIMEOUT} s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"bash docker/build.sh --tag {IMAGE} failed: {explain(proc)}", pytrace=False)
    assert image_exists(IMAGE)
    return IMAGE


def docker_run(image: str, *args: str, options: Sequence[str] = (), network: str = "host",
               timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` under a unique name, removed by force if it hangs: no container is left."""
    name = f"vmafx-node-test-{uuid.uuid4().hex[:12]}"
    cmd = ["docker", "run", "--rm", "--name", name, "--network", network, *options, image, *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, stdin=subprocess.DEVNULL)
        pytest.fail(f"`{' '.join(cmd)}` still ran after {timeout} s; container removed", pytrace=False)


class Containers:
    """Detached containers of one test, always removed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def start(self, image: str, *args: str, options: Sequence[str] = (), name: str | None = None) -> str:
        name = name or f"vmafx-node-test-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", *options, image, *args],
                       capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL, timeout=120)
        return name

    def logs(self) -> str:
        return "\n".join(subprocess.run(["docker", "logs", "--tail", "30", n], capture_output=True, text=True,
                                        stdin=subprocess.DEVNULL).stderr for n in self.names)

    def remove(self) -> None:
        if self.names:
            subprocess.run(["docker", "rm", "-f", *self.names], capture_output=True, stdin=subprocess.DEVNULL)


def fuse_device_for_the_node_user(tmp_path: Path) -> Path | None:
    """A /dev/fuse the container's non-root user can open: the host's when it is 0666 (what udev sets
    on an ordinary host), else, as root, a 0666 node of the same device in tmp_path."""
    host = Path("/dev/fuse")
    if not host.exists():
        return None
    st = host.stat()
    if stat.S_IMODE(st.st_mode) & 0o666 == 0o666:
        return host
    if os.geteuid() != 0:
        return None
    node = tmp_path / "fuse"
    os.mknod(node, stat.S_IFCHR | 0o666, st.st_rdev)
    node.chmod(0o666)
    return node
