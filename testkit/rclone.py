"""rclone environments for tests: a config-less rclone with local remotes, and a fake S3 remote.

The S3 server's remote is `testkit.s3server.S3Server.rclone_env`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from vmafx_core.process import Child, wait_for

#: what could point rclone (or vmafx's choice of it) at a config other than the test's own
CONFIG_VARIABLES = ("VMAFX_RCLONE_CONFIG", "RCLONE_CONFIG", "VMAFX_REMOTE_MAP", "VMAFX_RCLONE")


def local_remotes(monkeypatch: pytest.MonkeyPatch, home: Path, remotes: Sequence[str]) -> None:
    """No config file (none named, a fresh `home`, no XDG_CONFIG_HOME); `remotes` of type local."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for remote in remotes:
        monkeypatch.setenv(f"RCLONE_CONFIG_{remote.upper()}_TYPE", "local")


@contextmanager
def serve_fake_s3(root: Path, monkeypatch: pytest.MonkeyPatch, access_key: str, secret: str) -> Iterator[int]:
    """`rclone serve s3` over `root` on loopback (each folder in it a bucket), and remote `s3` set to it.

    Yields the port; the server is a `Child` named "fake s3", stopped on exit.
    """
    from vmafx_rclone_common import find_rclone

    env = {**os.environ, "RCLONE_CONFIG": os.devnull, "RCLONE_AUTH_KEY": f'"{access_key},{secret}"'}
    ports: list[int] = []
    started = re.compile(r"Starting s3 server on \[http://127\.0\.0\.1:(\d+)/")
    child = Child([find_rclone(), "serve", "s3", str(root), "--addr", "127.0.0.1:0"],
                  name="fake s3", env=env,
                  on_stderr_line=lambda line: ports.extend(int(m) for m in started.findall(line)))
    try:
        wait_for(lambda: bool(ports) or child.poll() is not None, timeout=30)
        assert ports, child.tail()
        monkeypatch.setenv("RCLONE_CONFIG_S3_TYPE", "s3")
        monkeypatch.setenv("RCLONE_CONFIG_S3_PROVIDER", "Rclone")
        monkeypatch.setenv("RCLONE_CONFIG_S3_ENDPOINT", f"http://127.0.0.1:{ports[0]}")
        monkeypatch.setenv("RCLONE_CONFIG_S3_ACCESS_KEY_ID", access_key)
        monkeypatch.setenv("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", secret)
        yield ports[0]
    finally:
        child.stop()
