"""The rclone-mount backend against real rclone and real FUSE, over local-folder remotes."""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from rclone_mount_helpers import WEIRD_NAMES, mount_children
from vmafx_rclone_common import find_rclone
from vmafx_rclone_mount.folders import PREFIX, Owner, make_folder, temp_root
from vmafx_rclone_mount.fuse import fuse_device_problem, is_mounted
from vmafx_rclone_mount.mount import mount_args, prepare
from vmafx_rclone_mount.plugin import BACKEND, availability, vmafx_storage_backends

from testkit.procs import children_named, mounts_under
from vmafx_core.errors import BadInput, EnvironmentMissing, JobFailed
from vmafx_core.process import Child, wait_for
from vmafx_core.types import InputRequest, PrepareContext


def _requests(*uris: str) -> list[InputRequest]:
    roles = ["reference", "distorted", "extra1", "extra2"]
    return [InputRequest(roles[i], uri) for i, uri in enumerate(uris)]


def _path(url: str) -> str:
    assert url.startswith("file:/"), url
    return url.removeprefix("file:")


def _mount_point(url: str) -> str:
    path = _path(url)
    base = temp_root() + "/"
    assert path.startswith(base + PREFIX), path
    return base + path[len(base):].split("/", 1)[0]


def test_plugin_is_registered() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="vmafx")}
    assert names.get("rclone-mount") == "vmafx_rclone_mount.plugin"
    (backend,) = vmafx_storage_backends()
    assert backend is BACKEND and backend.name == "rclone-mount" and backend.auto_priority == 10
    assert backend.handles("s3://b/k.mp4") and backend.handles("localt:/x.mp4")
    assert not backend.handles("/tmp/x.mp4") and not backend.handles("https://h/x.mp4")


def test_availability_here_and_without_fusermount(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usable = availability()
    assert usable.usable and "fusermount3 at" in usable.reason, usable.reason
    monkeypatch.setenv("PATH", str(tmp_path))  # read at call time: no fusermount3 there
    missing = availability()
    assert not missing.usable
    assert missing.reason == "fusermount3 is not on PATH (Debian: apt-get install fuse3)"
    with pytest.raises(EnvironmentMissing, match="fusermount3 is not on PATH"):
        with prepare(_requests("localt:/tmp/x.mp4"), PrepareContext()):
            pass


def test_availability_names_a_missing_fuse_device_and_rclone(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    missing = fuse_device_problem(str(tmp_path / "fuse"))
    assert missing is not None and missing.startswith(f"{tmp_path}/fuse is missing: no FUSE")
    unopenable = fuse_device_problem(str(tmp_path))
    assert unopenable is not None and "cannot be opened (Is a directory)" in unopenable
    monkeypatch.setenv("VMAFX_RCLONE", str(tmp_path / "no-rclone"))
    answer = availability()
    assert not answer.usable and "VMAFX_RCLONE" in answer.reason and "fusermount3" not in answer.reason


def test_two_inputs_under_one_root_share_one_mount(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localt:{folder}/a/y/dis.mp4"),
                 PrepareContext()) as prepared:
        (rclone,) = mount_children()
        point = _mount_point(prepared[0].url)
        assert _mount_point(prepared[1].url) == point
        assert rclone.argv[1:4] == ["mount", f"localt:{folder}/a/", point]
        assert "--daemon" not in rclone.argv
        assert is_mounted(point)
        assert [p.role for p in prepared] == ["reference", "distorted"]
        assert [p.size for p in prepared] == [len(b"a/x/ref.mp4") * 3, len(b"a/y/dis.mp4") * 3]
        assert Path(_path(prepared[0].url)).read_bytes() == b"a/x/ref.mp4" * 3
        assert Path(_path(prepared[1].url)).read_bytes() == b"a/y/dis.mp4" * 3
        assert prepared[0].display == f"localt:{folder}/a/x/ref.mp4"
        with pytest.raises(OSError) as info:
            Path(_path(prepared[0].url)).write_bytes(b"overwrite")
        assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    assert not is_mounted(point) and not os.path.exists(point)


def test_the_mount_is_private_and_read_only(folder: Path) -> None:
    made = make_folder()
    try:
        assert stat.S_IMODE(os.lstat(made).st_mode) == 0o700
        assert os.path.dirname(made) == temp_root() and os.path.basename(made).startswith(Owner.me().prefix())
    finally:
        os.rmdir(made)
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()) as (item,):
        point = _mount_point(item.url)
        table = Path("/proc/self/mountinfo").read_text()
        (line,) = [ln for ln in table.splitlines() if f" {point} " in ln]
        assert " - fuse.rclone " in line and line.split()[5].startswith("ro")
        assert "allow_other" not in line  # the kernel lets only the mounting user (and root) in


def test_two_roots_get_two_mounts(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localu:{folder}/a/y/dis.mp4"),
                 PrepareContext()) as prepared:
        assert len(mount_children()) == 2
        assert _mount_point(prepared[0].url) != _mount_point(prepared[1].url)
        assert [Path(_path(p.url)).read_bytes() for p in prepared] == [b"a/x/ref.mp4" * 3, b"a/y/dis.mp4" * 3]


def test_awkward_names_work(folder: Path) -> None:
    uris = [f"localt:{folder}/{name}" for name in WEIRD_NAMES]
    requests = [InputRequest(f"input{i}", uri) for i, uri in enumerate(uris)]
    with prepare(requests, PrepareContext()) as prepared:
        assert len(mount_children()) == 1
        for name, item in zip(WEIRD_NAMES, prepared, strict=True):
            assert item.display == f"localt:{folder}/{name}"
            assert item.url.endswith("/" + name)
            assert item.size == len(name.encode()) * 3
            assert Path(_path(item.url)).read_bytes() == name.encode() * 3, name


def test_missing_object_is_bad_input(folder: Path) -> None:
    with pytest.raises(BadInput) as info:
        with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localt:{folder}/a/x/missing.mp4"),
                     PrepareContext()):
            pytest.fail("prepared a missing object")
    expected = f"distorted localt:{folder}/a/x/missing.mp4: no such object (checked through rclone)"
    assert info.value.message == expected


def test_missing_folder_and_folder_instead_of_file_are_bad_input(folder: Path) -> None:
    with pytest.raises(BadInput, match="no such object"):
        with prepare(_requests(f"localt:{folder}/nodir/ref.mp4"), PrepareContext()):
            pass
    with pytest.raises(BadInput, match="is a folder, not a video file"):
        with prepare(_requests(f"localt:{folder}/a/x"), PrepareContext()):
            pass


def test_unknown_remote_is_one_line(folder: Path) -> None:
    with pytest.raises(BadInput) as info:
        with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", "nosuchremote:bucket/ref.mp4"),
                     PrepareContext()):
            pass
    expected = "distorted nosuchremote:bucket/ref.mp4: unknown rclone remote 'nosuchremote'"
    assert info.value.message.startswith(expected) and "\n" not in info.value.message


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "ctrl-c"])
def test_everything_is_undone_on_exception_and_ctrl_c(folder: Path, exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localu:{folder}/a/y/dis.mp4"),
                     PrepareContext()) as prepared:
            pids = [c.pid for c in mount_children()]
            points = [_mount_point(p.url) for p in prepared]
            assert len(pids) == 2 and all(is_mounted(p) for p in points)
            raise exc
    for pid, point in zip(pids, points, strict=True):
        assert not Path(f"/proc/{pid}").exists() and not os.path.exists(point)


def test_a_file_still_open_at_exit_is_detached_lazily(folder: Path) -> None:
    """Like ffmpeg still reading when the job ends: `fusermount3 -u` is refused, `-uz` is not."""
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()) as (item,):
        reader = open(_path(item.url), "rb")  # noqa: SIM115 - held open across the exit on purpose
        assert reader.read(3) == b"a/x"
        point = _mount_point(item.url)
    try:
        assert not is_mounted(point) and not os.path.exists(point)
    finally:
        try:
            reader.close()
        except OSError:  # the connection is gone: the kernel answers ENOTCONN
            pass


def test_an_rclone_that_dies_during_the_job_fails_it(folder: Path) -> None:
    with pytest.raises(JobFailed, match="stopped during the job"):
        with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()) as (item,):
            (rclone,) = mount_children()
            os.kill(rclone.pid, signal.SIGKILL)
            rclone.proc.wait(10)
            point = _mount_point(item.url)
    assert not is_mounted(point) and not os.path.exists(point)


def test_flags_keep_media_off_disk_and_out_of_the_page_cache() -> None:
    from vmafx_rclone_common import RcloneSettings, RemoteRoot

    settings = RcloneSettings.from_options({"rclone_io_timeout": 2.5})
    args = mount_args(RemoteRoot("s3", "bucket/dir", (0,)), "/tmp/m", settings.network_args())
    assert args[:3] == ["mount", "s3:bucket/dir/", "/tmp/m"]
    assert args[args.index("--vfs-cache-mode") + 1] == "off"
    assert "--read-only" in args and "--direct-io" in args
    assert "--daemon" not in args and "--allow-other" not in args
    # a connection gone silent mid-stream is dropped and re-read, not waited on for rclone's 5 minutes
    assert args[args.index("--timeout") + 1] == "2.5s" and args[args.index("--low-level-retries") + 1] == "3"


# -- mounts left behind by runs that were killed ---------------------------------------------------


def _dead_pid() -> int:
    """A pid no process can have: above the kernel's maximum."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


@pytest.fixture
def foreign_mounts(folder: Path) -> Iterator[list[tuple[str, Child]]]:
    """Start rclone mounts the way a killed run would have left them; always undo what is left."""
    made: list[tuple[str, Child]] = []
    yield made
    for point, child in made:
        child.stop()
        if is_mounted(point):
            os.system(f"fusermount3 -uz '{point}'")  # noqa: S605 - test cleanup of a path made here
        if os.path.isdir(point):
            os.rmdir(point)


def _foreign_mount(made: list[tuple[str, Child]], folder: Path, name: str) -> tuple[str, Child]:
    point = os.path.join(temp_root(), name)
    os.mkdir(point, 0o700)
    env = {**os.environ, "RCLONE_CONFIG": os.devnull}
    child = Child([find_rclone(), "mount", f"localt:{folder}/a/x/", point, "--read-only"], name="test rclone",
                  env=env)
    made.append((point, child))
    assert wait_for(lambda: is_mounted(point) or child.poll() is not None, 30), child.tail()
    assert is_mounted(point), child.tail()
    return point, child


def test_a_stale_mount_of_a_killed_run_is_cleaned(folder: Path, foreign_mounts: list[tuple[str, Child]],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    point, child = _foreign_mount(foreign_mounts, folder, f"{PREFIX}{_dead_pid()}-x")
    reader = open(os.path.join(point, "ref.mp4"), "rb")  # noqa: SIM115
    assert reader.read(3) == b"a/x"
    child.signal(signal.SIGKILL)
    child.wait(10)
    with pytest.raises(OSError) as info:
        os.stat(point)
    assert info.value.errno == errno.ENOTCONN  # "Transport endpoint is not connected"
    try:
        reader.close()
    except OSError:
        pass
    caplog.set_level(logging.INFO, logger="vmafx_rclone_mount")
    with prepare(_requests(f"localt:{folder}/a/y/dis.mp4"), PrepareContext()) as (item,):
        assert Path(_path(item.url)).read_bytes() == b"a/y/dis.mp4" * 3
        assert not is_mounted(point) and not os.path.exists(point)
    assert any(r.levelno == logging.WARNING and point in r.getMessage() for r in caplog.records)


def test_a_live_mount_of_a_dead_owner_is_cleaned_and_its_rclone_ends(
        folder: Path, foreign_mounts: list[tuple[str, Child]]) -> None:
    point, child = _foreign_mount(foreign_mounts, folder, f"{PREFIX}{_dead_pid()}-y")
    with prepare(_requests(f"localt:{folder}/a/y/dis.mp4"), PrepareContext()):
        assert not is_mounted(point) and not os.path.exists(point)
    assert wait_for(lambda: child.poll() is not None, 10), "rclone kept running after its unmount"


def test_mounts_of_live_jobs_are_left_alone(folder: Path, foreign_mounts: list[tuple[str, Child]]) -> None:
    """Another vmafx job (here: a sleeping process) owns a mount; a reused pid does not count as it."""
    with Child(["sleep", "60"], name="other job") as other:
        me = Owner.me()
        live = Owner(other.pid, *_identity(other.pid, me))
        reused = Owner(other.pid, (live.start or 0) + 1, live.pidns)
        elsewhere = Owner(other.pid, live.start, (live.pidns or 0) + 1)
        live_point, _ = _foreign_mount(foreign_mounts, folder, live.prefix() + "live")
        reused_point, _ = _foreign_mount(foreign_mounts, folder, reused.prefix() + "reused")
        other_ns_point, _ = _foreign_mount(foreign_mounts, folder, elsewhere.prefix() + "elsewhere")
        with prepare(_requests(f"localt:{folder}/a/y/dis.mp4"), PrepareContext()):
            assert is_mounted(live_point) and is_mounted(other_ns_point)
            assert not os.path.exists(reused_point)
        assert is_mounted(live_point) and is_mounted(other_ns_point)


def _identity(pid: int, me: Owner) -> tuple[int, int | None]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[19]), me.pidns


def test_nothing_of_ours_is_mounted_when_tests_end() -> None:
    assert not mounts_under(os.path.join(temp_root(), f"{PREFIX}{os.getpid()}-"))
    assert not children_named("rclone")
