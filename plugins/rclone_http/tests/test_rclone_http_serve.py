"""The rclone-http backend against real rclone: a local folder remote, and `rclone serve s3` as storage."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import subprocess
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from vmafx_rclone_http.plugin import BACKEND, vmafx_storage_backends
from vmafx_rclone_http.serve import HttpOptions, prepare

from testkit.procs import children_named
from testkit.rclone import local_remotes, serve_fake_s3
from vmafx_core.errors import BadInput, EnvironmentMissing, JobFailed
from vmafx_core.process import Child, live_children
from vmafx_core.types import InputRequest, PrepareContext, PreparedInput

WEIRD_NAMES = ["with space.mp4", "ünïcödé ✓.mp4", "hash#1.mp4", "what?.mp4", "100%.mp4", "%41 literal.mp4",
               "plus+amp&semi;eq=.mp4", "quote'.mp4", "dir with space/inner #2.mp4"]


def _servers() -> list[Child]:
    return [c for c in live_children() if c.name == "rclone serve http"]


@pytest.fixture(autouse=True)
def rclone_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No config file, two local remotes `localt` and `localu`; fail loudly on a leftover rclone."""
    local_remotes(monkeypatch, tmp_path / "home", ["localt", "localu"])
    yield
    left = children_named("rclone", zombies=True) - {c.pid for c in live_children() if c.name == "fake s3"}
    assert not left, f"rclone processes left behind: {left}"
    assert not _servers()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Files with awkward names; each holds its own name so a wrong file is caught."""
    root = tmp_path / "media"
    for name in WEIRD_NAMES + ["a/x/ref.mp4", "a/y/dis.mp4"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 3)
    return root


def _get(url: str, *, auth: bool = True, method: str = "GET") -> tuple[int, bytes]:
    parts = urlsplit(url)
    headers = {}
    if auth:
        token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, parts.path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _requests(*uris: str) -> list[InputRequest]:
    roles = ["reference", "distorted", "extra1", "extra2"]
    return [InputRequest(roles[i], uri) for i, uri in enumerate(uris)]


def test_plugin_is_registered_and_usable() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="vmafx")}
    assert names.get("rclone-http") == "vmafx_rclone_http.plugin"
    (backend,) = vmafx_storage_backends()
    assert backend is BACKEND and backend.name == "rclone-http" and backend.auto_priority == 20
    assert backend.availability().usable
    assert backend.handles("s3://b/k.mp4") and backend.handles("localt:/x.mp4")
    assert not backend.handles("/tmp/x.mp4") and not backend.handles("https://h/x.mp4")


def test_two_inputs_under_one_root_share_one_server(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localt:{folder}/a/y/dis.mp4"),
                 PrepareContext()) as prepared:
        assert len(_servers()) == 1
        (server,) = _servers()
        assert f"localt:{folder}/a" in server.argv
        assert len({urlsplit(p.url).port for p in prepared}) == 1
        assert [p.role for p in prepared] == ["reference", "distorted"]
        assert _get(prepared[0].url) == (200, b"a/x/ref.mp4" * 3)
        assert _get(prepared[1].url) == (200, b"a/y/dis.mp4" * 3)
    assert not _servers()


def test_two_roots_get_two_servers(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localu:{folder}/a/y/dis.mp4"),
                 PrepareContext()) as prepared:
        assert len(_servers()) == 2
        assert len({urlsplit(p.url).port for p in prepared}) == 2
        assert [_get(p.url)[1] for p in prepared] == [b"a/x/ref.mp4" * 3, b"a/y/dis.mp4" * 3]
    assert not _servers()


def test_awkward_names_are_percent_encoded(folder: Path) -> None:
    uris = [f"localt:{folder}/{name}" for name in WEIRD_NAMES]
    requests = [InputRequest(f"input{i}", uri) for i, uri in enumerate(uris)]
    with prepare(requests, PrepareContext()) as prepared:
        assert len(_servers()) == 1
        for name, item in zip(WEIRD_NAMES, prepared, strict=True):
            assert item.display == f"localt:{folder}/{name}"
            assert item.size == len(name.encode()) * 3
            assert _get(item.url) == (200, name.encode() * 3), name
            assert "'" not in item.url and " " not in item.url and "#" not in item.url


def test_prepared_input_carries_its_secret_and_ffmpeg_options(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()) as (item,):
        parts = urlsplit(item.url)
        assert parts.hostname == "127.0.0.1" and parts.password and item.url_has_secret
        assert item.secrets == (parts.password,)
        assert item.display == f"localt:{folder}/a/x/ref.mp4" and parts.password not in item.display
        options = dict(zip(item.input_options[::2], item.input_options[1::2], strict=True))
        assert options["-rw_timeout"] == "20000000" and options["-reconnect"] == "1"
        assert options["-reconnect_on_network_error"] == "1" and options["-http_proxy"] == "none"


def test_request_without_credentials_gets_401(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()) as (item,):
        status, body = _get(item.url, auth=False)
        assert status == 401 and b"a/x/ref.mp4" not in body
        wrong = item.url.replace(urlsplit(item.url).password or "", "wrongpassword")
        assert _get(wrong)[0] == 401


def test_secrets_are_not_in_the_command_line(folder: Path) -> None:
    with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()) as (item,):
        (server,) = _servers()
        parts = urlsplit(item.url)
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().decode()
        assert parts.password and parts.password not in cmdline
        baseurl = parts.path.split("/")[1]
        assert baseurl not in cmdline
        assert f"RCLONE_PASS={parts.password}" in environ.split("\0")
        assert parts.password not in server.tail()


def test_missing_object_is_bad_input(folder: Path) -> None:
    with pytest.raises(BadInput) as info:
        with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localt:{folder}/a/x/missing.mp4"),
                     PrepareContext()):
            pytest.fail("prepared a missing object")
    expected = f"distorted localt:{folder}/a/x/missing.mp4: no such object (checked through rclone)"
    assert info.value.message == expected
    assert not _servers()


def test_folder_instead_of_file_is_bad_input(folder: Path) -> None:
    with pytest.raises(BadInput, match="is a folder, not a video file"):
        with prepare(_requests(f"localt:{folder}/a/x"), PrepareContext()):
            pass


def test_unknown_remote_is_one_line(folder: Path) -> None:
    with pytest.raises(BadInput) as info:
        with prepare(_requests("nosuchremote:bucket/ref.mp4", f"localt:{folder}/a/x/ref.mp4"),
                     PrepareContext()):
            pass
    expected = "reference nosuchremote:bucket/ref.mp4: unknown rclone remote 'nosuchremote'"
    assert info.value.message.startswith(expected)
    assert "\n" not in info.value.message
    assert not _servers()


def test_bad_options_are_bad_input() -> None:
    with pytest.raises(BadInput, match="rclone_buffer_size"):
        HttpOptions.from_options({"rclone_buffer_size": "lots"})
    with pytest.raises(BadInput, match="http_rw_timeout"):
        HttpOptions.from_options({"http_rw_timeout": 0})
    options = HttpOptions.from_options({"rclone_buffer_size": "0", "http_rw_timeout": "2.5"})
    assert options.buffer_size == "0" and options.ffmpeg_input_options()[:2] == ("-rw_timeout", "2500000")


def test_servers_stop_on_exception_and_ctrl_c(folder: Path) -> None:
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with prepare(_requests(f"localt:{folder}/a/x/ref.mp4", f"localu:{folder}/a/y/dis.mp4"),
                         PrepareContext()):
                pids = [s.pid for s in _servers()]
                assert len(pids) == 2
                raise exc
        assert not _servers()
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists()


def test_a_server_that_dies_during_the_job_fails_it(folder: Path) -> None:
    with pytest.raises(JobFailed, match="stopped during the job"):
        with prepare(_requests(f"localt:{folder}/a/x/ref.mp4"), PrepareContext()):
            (server,) = _servers()
            os.kill(server.pid, signal.SIGKILL)
            server.proc.wait(10)
    assert not _servers()


def test_ffmpeg_reads_the_prepared_input_through_the_core(tmp_path: Path) -> None:
    ffmpeg_mod = pytest.importorskip("vmafx_core.ffmpeg")
    ffmpeg = ffmpeg_mod.find_ffmpeg()
    clip = tmp_path / "clips" / "ref #1 ü?.mp4"
    clip.parent.mkdir()
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    with prepare(_requests(f"localt:{clip}"), PrepareContext()) as (item,):
        info = ffmpeg_mod.probe(ffmpeg, item)
        assert (info.width, info.height) == (64, 48)
        assert item.size == clip.stat().st_size


# -- rclone serve s3 as the storage behind an s3 remote ---------------------------------------------


@pytest.fixture
def fake_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A real S3 endpoint on loopback (`rclone serve s3` over a folder) with one bucket `videos`."""
    bucket = tmp_path / "s3" / "videos" / "clips"
    bucket.mkdir(parents=True)
    (bucket / "ref.mp4").write_bytes(b"R" * 1000)
    (bucket / "dis.mp4").write_bytes(b"D" * 700)
    with serve_fake_s3(tmp_path / "s3", monkeypatch, "AKIDVMAFX", "SECRETVMAFX1") as port:
        yield port


def test_s3_uris_share_one_server_per_bucket(fake_s3: int) -> None:
    uris = ("s3://videos/clips/ref.mp4", "s3://videos/clips/dis.mp4")
    with prepare(_requests(*uris), PrepareContext()) as items:
        (server,) = _servers()
        assert "s3:videos/clips" in server.argv
        assert [p.size for p in items] == [1000, 700]
        assert tuple(p.display for p in items) == uris
        assert _get(items[1].url) == (200, b"D" * 700)
        assert "SECRETVMAFX1" not in Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()


def test_s3_missing_object_and_bucket_are_bad_input(fake_s3: int) -> None:
    for uri in ("s3://videos/clips/nope.mp4", "s3://nobucket/clips/ref.mp4"):
        with pytest.raises(BadInput, match="no such object"):
            with prepare(_requests(uri), PrepareContext()):
                pass


def test_s3_refused_credentials_are_environment_missing(fake_s3: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "WRONGSECRET")
    with pytest.raises(EnvironmentMissing) as info:
        with prepare(_requests("s3://videos/clips/ref.mp4"), PrepareContext()):
            pass
    message = info.value.message
    expected = "reference s3://videos/clips/ref.mp4: the storage refused the credentials of remote 's3'"
    assert message.startswith(expected) and "\n" not in message
    assert "WRONGSECRET" not in message and "WRONGSECRET" not in (info.value.detail or "")


def test_s3_remote_map_from_option(fake_s3: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TYPE", "PROVIDER", "ENDPOINT", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
        monkeypatch.setenv(f"RCLONE_CONFIG_MYMINIO_{key}", os.environ[f"RCLONE_CONFIG_S3_{key}"])
    monkeypatch.delenv("RCLONE_CONFIG_S3_TYPE")
    context = PrepareContext(options={"remote_map": {"s3": "myminio"}})
    with prepare(_requests("s3://videos/clips/ref.mp4"), context) as (item,):
        assert item.size == 1000 and isinstance(item, PreparedInput)
