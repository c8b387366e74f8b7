"""Fault injection with real processes: truncation, stalls, signals, load, bad inputs, secrets.

Faults are injected into the real thing: rclone is SIGKILLed, the S3 container is killed or
paused. Destructive tests get an S3 server of their own so the shared one stays healthy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from testkit import leftovers
from testkit.cli import run_vmafx
from testkit.media import Media, cut_mkv, ffmpeg_run
from testkit.s3server import RunningServer, S3Server, docker_problem
from testkit.watch import Watcher
from tests.integration.conftest import _unavailable

pytestmark = pytest.mark.integration

MODES = ["rclone-http", "rclone-mount"]
W, H, FRAMES = 1280, 720, 500
RAW = ["--width", str(W), "--height", str(H), "--pix-fmt", "yuv420p", "--fps", "25"]


@pytest.fixture(scope="module")
def long_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 690 MB of raw 720p: long enough to be cut off in the middle of reading."""
    path = tmp_path_factory.mktemp("raw") / "long.yuv"
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25", "-frames:v", str(FRAMES), "-f", "rawvideo",
               "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture
def own_server() -> Iterator[RunningServer]:
    """An S3 server for one destructive test."""
    problem = docker_problem()
    if problem:
        _unavailable(problem)
    running = RunningServer()
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _server(running: RunningServer) -> S3Server:
    return S3Server(running.kind, f"http://127.0.0.1:{running.port}", running.port, running.access_key,
                    running.secret_key)


def _score_on_own_server(running: RunningServer, long_raw: Path, mode: str, *args: str,
                         debug: bool = False) -> tuple[subprocess.Popen[str], Watcher]:
    """Upload the long raw clip to a server of the test's own and start scoring it against itself."""
    server = _server(running)
    server.make_bucket("bkt")
    server.put_file("bkt", "long.yuv", long_raw)
    env = {**server.rclone_env(), **({"VMAFX_LOG": "debug"} if debug else {})}
    proc = _start(env, "--storage", mode, "s3://bkt/long.yuv", "s3://bkt/long.yuv", *RAW, "--json", *args)
    return proc, Watcher(proc.pid)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def _wait_scoring(watcher: Watcher, seconds: float = 1.0) -> None:
    """Until ffmpeg has been scoring for `seconds`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(b"libvmaf" in c for c in watcher.cmdlines.values()):
        time.sleep(0.05)
    assert any(b"libvmaf" in c for c in watcher.cmdlines.values()), "scoring never started"
    time.sleep(seconds)


def _rclone_servers(watcher: Watcher) -> list[int]:
    """rclone serve/mount processes seen (not `rclone version` checks)."""
    return [p for p in watcher.named(b"rclone")
            if b"\0serve\0" in watcher.cmdlines[p] or b"\0mount\0" in watcher.cmdlines[p]]


def _assert_failed_cleanly(proc: subprocess.Popen[str], stdout: str, stderr: str, code: int = 1) -> None:
    assert proc.returncode == code, stderr
    assert stdout == "", "a failed job must not print a score"
    errors = [line for line in stderr.splitlines() if line.startswith("vmafx: error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert not leftovers.fuse_mounts(), stderr


@pytest.mark.parametrize("mode", MODES)
def test_rclone_killed_mid_stream_fails_the_job(s3_server: S3Server, bucket: str, long_raw: Path,
                                                mode: str) -> None:
    s3_server.put_file(bucket, "long.yuv", long_raw)
    uri = f"s3://{bucket}/long.yuv"
    proc = _start(s3_server.rclone_env(), "--storage", mode, uri, uri, *RAW, "--json")
    watcher = Watcher(proc.pid)
    _wait_scoring(watcher)
    rclone = _rclone_servers(watcher)
    assert rclone
    for pid in rclone:
        os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=180)
    watcher.stop()
    _assert_failed_cleanly(proc, stdout, stderr)


@pytest.mark.parametrize("mode", MODES)
def test_s3_server_killed_mid_stream_fails_the_job(own_server: RunningServer, long_raw: Path, mode: str) -> None:
    proc, watcher = _score_on_own_server(own_server, long_raw, mode, "--stall-timeout", "30")
    _wait_scoring(watcher, 0.5)
    assert own_server.container is not None
    own_server.container.get_wrapped_container().kill()
    stdout, stderr = proc.communicate(timeout=300)
    watcher.stop()
    # the store is gone: the environment (3), told by rclone's own error, the same in both modes
    _assert_failed_cleanly(proc, stdout, stderr, code=3)
    assert "remote 's3'" in stderr and "rclone" in stderr, stderr


@pytest.mark.parametrize("mode", MODES)
def test_paused_server_fails_within_the_stall_bound(own_server: RunningServer, long_raw: Path, mode: str) -> None:
    proc, watcher = _score_on_own_server(own_server, long_raw, mode, "--stall-timeout", "8", debug=True)
    _wait_scoring(watcher, 0.3)
    assert own_server.container is not None
    container = own_server.container.get_wrapped_container()
    container.pause()
    paused_at = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        container.unpause()
    watcher.stop()
    # a store that stopped answering: the environment (3), naming the remote, not a bare stall
    _assert_failed_cleanly(proc, stdout, stderr, code=3)
    assert "no answer from remote 's3' through rclone" in stderr, stderr
    # bounded: the stall bound plus teardown, not rclone's or the kernel's own minutes-long timeouts
    assert time.monotonic() - paused_at < 120


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("mode", MODES)
def test_signal_during_prepare(s3_server: S3Server, bucket: str, media: Media, mode: str, sig: int) -> None:
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    proc = _start(s3_server.rclone_env(), "--storage", mode, f"s3://{bucket}/ref.mp4", f"s3://{bucket}/ref.mp4")
    watcher = Watcher(proc.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _rclone_servers(watcher):
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    watcher.stop()
    # the signal may land before or after storage got ready; either way: 130 and nothing left
    assert proc.returncode == 130, stderr
    assert stdout == ""
    assert not leftovers.fuse_mounts()


def _named_after(pid: int) -> tuple[list[str], list[str]]:
    """Temp folders and mounts whose names carry `pid`."""
    tag = f"-{pid}-"
    folders = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("vmafx-") and tag in n]
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if "vmafx-" in line.split()[1] and tag in line.split()[1]]
    return folders, mounts


@pytest.mark.needs_fuse
@pytest.mark.parametrize("cleaner", ["local run", "doctor"])
def test_what_a_killed_mount_run_left_is_cleaned_by_any_run(s3_server: S3Server, bucket: str, long_raw: Path,
                                                            media: Media, cleaner: str) -> None:
    """SIGKILL gives vmafx no chance to unmount: the next vmafx anything (a local job, doctor) does."""
    s3_server.put_file(bucket, "long.yuv", long_raw)
    uri = f"s3://{bucket}/long.yuv"
    proc = _start(s3_server.rclone_env(), "--storage", "rclone-mount", uri, uri, *RAW)
    watcher = Watcher(proc.pid)
    _wait_scoring(watcher, 0.3)
    proc.kill()
    proc.communicate(timeout=60)
    watcher.stop()
    folders, _ = _named_after(proc.pid)
    assert any(n.startswith("vmafx-mount-") for n in folders) and \
        any(n.startswith("vmafx-rclone-notify-") for n in folders), folders
    args = ["run", str(media.ref), str(media.ref)] if cleaner == "local run" else ["doctor"]
    out = run_vmafx(*args)
    assert out.code == 0, out.stderr
    assert _named_after(proc.pid) == ([], []), out.stderr


def _unreachable_env(port: int) -> dict[str, str]:
    return {"RCLONE_CONFIG_S3_TYPE": "s3", "RCLONE_CONFIG_S3_PROVIDER": "Other",
            "RCLONE_CONFIG_S3_ENDPOINT": f"http://127.0.0.1:{port}", "RCLONE_CONFIG_S3_ACCESS_KEY_ID": "k",
            "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": "s", "RCLONE_CONFIG_S3_FORCE_PATH_STYLE": "true"}


@pytest.mark.parametrize("mode", MODES)
def test_refused_endpoint_fails_at_once_naming_it(mode: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        started = time.monotonic()
        out = run_vmafx("run", "--storage", mode, "s3://b/ref.mp4", "s3://b/dis.mp4", env=_unreachable_env(port))
        took = time.monotonic() - started
    assert out.code == 3, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "connection refused" in lines[0], out.stderr
    assert took < 20, f"took {took:.1f}s; rclone's own retries took about a minute"  # loose: a noisy machine


@pytest.mark.parametrize("mode", MODES)
def test_silent_endpoint_fails_within_the_prepare_timeout(mode: str) -> None:
    """A server that accepts connections and never answers: the bound covers every attempt."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        started = time.monotonic()
        out = run_vmafx("run", "--storage", mode, "s3://b/ref.mp4", "s3://b/dis.mp4", "--prepare-timeout", "3",
                        env=_unreachable_env(silent.getsockname()[1]))
        took = time.monotonic() - started
    assert out.code == 3, out.stderr
    assert out.stderr.startswith("vmafx: error: ") and "no answer from remote 's3'" in out.stderr, out.stderr
    assert "--prepare-timeout" in out.stderr.splitlines()[0]
    assert took < 15, f"took {took:.1f}s for --prepare-timeout 3: retries were not bounded"  # loose bound


def test_sixteen_concurrent_runs_mixed_modes(s3_server: S3Server, bucket: str, media: Media) -> None:
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    expected = run_vmafx("run", str(media.ref), str(media.dis), "--json").json()["metrics"]["vmaf"]

    def one(i: int) -> Any:
        mode = MODES[i % 2]
        return run_vmafx("run", "--storage", mode, f"s3://{bucket}/ref.mp4", f"s3://{bucket}/dis.mp4", "--json",
                         "--n-threads", "1", env=s3_server.rclone_env(), timeout=600)

    with ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(one, range(16)))
    for out in outs:
        assert out.code == 0, out.stderr
        assert out.json()["metrics"]["vmaf"] == expected


@pytest.mark.parametrize("mode", MODES)
def test_remote_bad_inputs(s3_server: S3Server, bucket: str, media: Media, mode: str) -> None:
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_bytes(bucket, "empty.mp4", b"")
    s3_server.put_bytes(bucket, "text.mp4", b"hello, I am not a video\n" * 200)
    env = s3_server.rclone_env()
    ref = f"s3://{bucket}/ref.mp4"
    cases = {
        f"s3://{bucket}/empty.mp4": (2, "is empty (0 bytes)"),
        f"s3://{bucket}/text.mp4": (2, "not a video"),
        f"s3://{bucket}/a/../ref.mp4": (2, "'..'"),
        "ftp2://host/x.mp4": (2, "to read ftp2:// through rclone, map it to a remote: VMAFX_REMOTE_MAP=ftp2=REMOTE"),
    }
    for dis, (code, text) in cases.items():
        out = run_vmafx("run", "--storage", mode, ref, dis, env=env)
        assert out.code == code, (dis, out.stderr)
        assert text in out.stderr.splitlines()[0], (dis, out.stderr)
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize("mode", MODES)
def test_remote_container_cut_short_is_not_scored(s3_server: S3Server, bucket: str, tmp_path: Path,
                                                  mode: str) -> None:
    """An object that ends early transfers without an error: only the declared frame count tells."""
    full, cut = cut_mkv(tmp_path)
    s3_server.put_file(bucket, "full.mkv", full)
    s3_server.put_file(bucket, "cut.mkv", cut)
    env = s3_server.rclone_env()
    whole = run_vmafx("run", "--storage", mode, f"s3://{bucket}/full.mkv", f"s3://{bucket}/full.mkv", env=env)
    assert whole.code == 0, whole.stderr
    out = run_vmafx("run", "--storage", mode, f"s3://{bucket}/cut.mkv", f"s3://{bucket}/full.mkv", "--json",
                    env=env)
    assert out.code == 1 and out.stdout == "", out.stderr
    assert "its container declares 200" in out.stderr.splitlines()[0], out.stderr


def _listening(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of the TCP sockets `pid` listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ip_hex, port_hex = fields[1].split(":")
                found.append((ip_hex if width == 8 else "v6:" + ip_hex, int(port_hex, 16)))
    return found


def test_serve_answers_only_loopback_and_only_with_the_job_credential(s3_server: S3Server, bucket: str,
                                                                      long_raw: Path) -> None:
    s3_server.put_file(bucket, "long.yuv", long_raw)
    uri = f"s3://{bucket}/long.yuv"
    proc = _start(s3_server.rclone_env(), uri, uri, *RAW)
    watcher = Watcher(proc.pid)
    try:
        _wait_scoring(watcher, 0.2)
        servers = _rclone_servers(watcher)
        assert len(servers) == 1
        listening = _listening(servers[0])
        assert listening and all(ip == "0100007F" for ip, _ in listening), listening  # 127.0.0.1 only
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{servers[0]}/environ").read_text().split("\0") if "=" in item)
        url = f"http://127.0.0.1:{listening[0][1]}{environ['RCLONE_BASEURL']}/long.yuv"
        for headers in ({}, {"Authorization": "Basic dmlzaXRvcjpndWVzcw=="}):  # none, and a wrong one
            request = urllib.request.Request(url, headers=headers, method="HEAD")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback only
            assert refused.value.code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        watcher.stop()


SENTINEL = "SENTINEL-s3cr3t-never-shown-7f3a"


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_sentinel_secret_in_config_file_never_shows(s3_server: S3Server, bucket: str, media: Media,
                                                    tmp_path: Path, outcome: str) -> None:
    """A secret in the rclone config file: not in any argv, log line, error or result (-vv on)."""
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    conf = tmp_path / "rclone.conf"
    # the sentinel is a real config value: a second remote's key, and the session token of ours
    conf.write_text(f"[s3]\ntype = s3\nprovider = Other\nendpoint = {s3_server.endpoint}\n"
                    f"access_key_id = {s3_server.access_key}\nsecret_access_key = "
                    f"{s3_server.secret_key if outcome == 'success' else SENTINEL}\n"
                    f"[other]\ntype = s3\nsecret_access_key = {SENTINEL}\n")
    conf.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    result = tmp_path / "result.json"
    proc = subprocess.Popen([sys.executable, "-m", "vmafx_core", "-vv", "run", f"s3://{bucket}/ref.mp4",
                             f"s3://{bucket}/dis.mp4", "--rclone-config", str(conf), "--json", "-o", str(result)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watcher = Watcher(proc.pid)
    stdout, stderr = proc.communicate(timeout=300)
    watcher.stop()
    assert proc.returncode == (0 if outcome == "success" else 3), stderr
    assert watcher.named(b"rclone")
    for cmdline in watcher.cmdlines.values():
        assert SENTINEL.encode() not in cmdline and s3_server.secret_key.encode() not in cmdline
    assert SENTINEL not in stdout + stderr and s3_server.secret_key not in stdout + stderr
    if result.exists():
        text = result.read_text()
        assert SENTINEL not in text and s3_server.secret_key not in text
        assert json.loads(text)["frames_scored"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_credentials_reach_rclone_alone(s3_server: S3Server, bucket: str, media: Media, mode: str) -> None:
    """ffmpeg reads untrusted media: no storage credential is in its environment, nor any other
    child's but rclone's (checked in /proc/PID/environ of every child while the job runs)."""
    s3_server.put_file(bucket, "ref.mp4", media.ref)
    s3_server.put_file(bucket, "dis.mp4", media.dis)
    env = {**s3_server.rclone_env(), "AWS_SECRET_ACCESS_KEY": SENTINEL, "RCLONE_CONFIG_OTHER_TYPE": "s3",
           "RCLONE_CONFIG_OTHER_SECRET_ACCESS_KEY": SENTINEL, "MY_API_TOKEN": SENTINEL}
    proc = _start(env, "--storage", mode, f"s3://{bucket}/ref.mp4", f"s3://{bucket}/dis.mp4", "--json")
    watcher = Watcher(proc.pid)
    stdout, stderr = proc.communicate(timeout=300)
    watcher.stop()
    assert proc.returncode == 0, stderr
    others = [pid for pid in watcher.environs if pid not in watcher.named(b"rclone")]
    assert any(b"ffmpeg" in watcher.cmdlines[pid] for pid in others), watcher.cmdlines
    for pid in others:
        for environ in watcher.environs[pid]:
            assert SENTINEL.encode() not in environ, watcher.cmdlines[pid]
            assert s3_server.secret_key.encode() not in environ, watcher.cmdlines[pid]
            assert b"RCLONE_" not in environ, watcher.cmdlines[pid]
    rclone = watcher.named(b"rclone")
    assert rclone and any(s3_server.secret_key.encode() in e for p in rclone for e in watcher.environs.get(p, []))


def test_allow_root_for_remote_prefixes(s3_server: S3Server, bucket: str, media: Media) -> None:
    s3_server.put_file(bucket, "ok/ref.mp4", media.ref)
    s3_server.put_file(bucket, "secret/dis.mp4", media.dis)
    env = s3_server.rclone_env()
    inside = run_vmafx("run", f"s3://{bucket}/ok/ref.mp4", f"s3://{bucket}/ok/ref.mp4", "--allow-root",
                       f"s3://{bucket}/ok/", env=env)
    assert inside.code == 0, inside.stderr
    for dis in (f"s3://{bucket}/secret/dis.mp4", f"s3:{bucket}/secret/dis.mp4", f"s3://{bucket}/ok/../secret/dis.mp4"):
        before = leftovers.rclone_pids()
        out = run_vmafx("run", f"s3://{bucket}/ok/ref.mp4", dis, "--allow-root", f"s3://{bucket}/ok", env=env)
        assert out.code == 2, out.stderr
        assert "outside the allowed roots" in out.stderr or "'..'" in out.stderr
        assert leftovers.rclone_pids() == before
