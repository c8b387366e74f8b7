"""The conformance suite every storage backend can run against itself (after fsspec's abstract tests).

Subclass `StorageBackendTests` in your plugin's tests, name your backend, and say how a local file
becomes one of your URIs; pytest then runs every check below against your backend as installed,
through the real `vmafx` CLI and the real ffmpeg::

    from pathlib import Path
    from vmafx_core.testing.storage import StorageBackendTests

    class TestMyStoreConformance(StorageBackendTests):
        backend = "mystore"

        def uri_for(self, path: Path, folder: Path) -> str:
            upload(path)                        # put the bytes where your backend reads them
            return f"mystore://bucket/{path.name}"

        def missing_uri(self, folder: Path) -> str:
            return "mystore://bucket/no-such-object.mp4"

        def corrupt_uri_for(self, path: Path, folder: Path) -> str | None:
            return None                         # or a URI whose served bytes are damaged

What it checks, each a promise of vmafx's README that a backend can break:

- the VMAF mean and every per-frame score equal a bare `ffmpeg -lavfi libvmaf` run on raw decodes
  of the same files (`bare_vmaf`), and the result names your backend;
- the container's declared length is known as for a local file (the cut-short check works), and
  an input cut short fails the job (exit 1) instead of scoring fewer frames;
- a missing input is one line, exit 2, no traceback;
- what your backend reports as corrupt (`PreparedInput.integrity`) fails the job with exit 4;
- no child's command line (readable by every local user) carries a URL with a password;
- Ctrl-C while scoring ends the run with exit 130, and nothing is left behind: no process, no
  temp folder, after success, failure and interruption alike.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vmafx_core.errors import ExitCode
from vmafx_core.ffmpeg import find_ffmpeg, probe
from vmafx_core.testing import (
    MARKER,
    CliRun,
    Leftovers,
    Pair,
    bare_vmaf,
    ffmpeg,
    make_pair,
    marked_processes,
    run_vmafx,
)
from vmafx_core.types import PreparedInput


class StorageBackendTests:
    """Abstract: set `backend` and implement `uri_for` and `missing_uri` (see the module docstring)."""

    #: the storage name your backend registers (what results name in provenance.storage)
    backend: str = ""
    #: what `vmafx run --storage` gets: "auto" checks that auto-selection reaches your backend
    storage: str = "auto"

    def uri_for(self, path: Path, folder: Path) -> str:
        """A URI of your storage that serves exactly the bytes of the local file `path`."""
        raise NotImplementedError

    def missing_uri(self, folder: Path) -> str:
        """A well-formed URI of your storage that names nothing."""
        raise NotImplementedError

    def corrupt_uri_for(self, path: Path, folder: Path) -> str | None:
        """A URI serving `path` with a damaged byte that your backend reports as corrupt; None: skip."""
        return None

    def extra_args(self) -> list[str]:
        """More `vmafx run` arguments every check passes (e.g. `--storage-option`s)."""
        return []

    def extra_env(self) -> dict[str, str]:
        """Environment every run gets (e.g. credentials for a test server)."""
        return {}

    # -- fixtures -------------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_folder(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return tmp_path_factory.mktemp(f"conformance-{cls.backend or 'backend'}")

    @pytest.fixture(scope="class")
    @classmethod
    def pair(cls, conformance_folder: Path) -> Pair:
        return make_pair(conformance_folder)

    @pytest.fixture(scope="class")
    @classmethod
    def truth(cls, pair: Pair, conformance_folder: Path) -> dict[str, Any]:
        return bare_vmaf(pair, conformance_folder)

    @pytest.fixture
    def leftovers(self, tmp_path: Path) -> Leftovers:
        return Leftovers.start(tmp_path)

    def _run(self, leftovers: Leftovers, *args: str) -> CliRun:
        return run_vmafx("run", *args, "--storage", self.storage, "--no-progress", *self.extra_args(),
                         env={**self.extra_env(), **leftovers.env})

    # -- the checks -----------------------------------------------------------------------------------

    def test_scores_equal_a_bare_ffmpeg_run(self, pair: Pair, truth: dict[str, Any], conformance_folder: Path,
                                            leftovers: Leftovers, tmp_path: Path) -> None:
        frames = tmp_path / "frames.json"
        out = self._run(leftovers, self.uri_for(pair.reference, conformance_folder),
                        self.uri_for(pair.distorted, conformance_folder), "--json", "--frames", str(frames))
        assert out.code == 0, out.stderr
        result = out.json()
        assert result["provenance"]["storage"] == {"reference": self.backend, "distorted": self.backend}
        assert result["metrics"]["vmaf"]["mean"] == truth["pooled_metrics"]["vmaf"]["mean"]
        per_frame = [row["vmaf"] for row in json.loads(frames.read_text())]
        assert per_frame == [f["metrics"]["vmaf"] for f in truth["frames"]]
        assert result["frames_scored"] == pair.frames
        assert leftovers.new() == []

    def test_declared_length_is_known_as_for_a_local_file(self, pair: Pair, conformance_folder: Path,
                                                          leftovers: Leftovers) -> None:
        local = probe(find_ffmpeg(), PreparedInput(role="reference", url=f"file:{pair.reference}",
                                                   display=str(pair.reference)))
        uri = self.uri_for(pair.reference, conformance_folder)
        out = self._run(leftovers, uri, uri, "--json")
        assert out.code == 0, out.stderr
        result = out.json()
        stream = result["provenance"]["reference_stream"]
        assert (stream["duration"], stream["declared_frames"]) == (local.duration, local.declared_frames)
        assert local.declared_frames == pair.frames
        assert not [n for n in result["notes"] if "length is unknown" in n], result["notes"]

    def test_an_input_cut_short_fails_the_job(self, conformance_folder: Path, leftovers: Leftovers,
                                              tmp_path: Path) -> None:
        full, cut = tmp_path / "full.mkv", tmp_path / "cut.mkv"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-c:v", "libx264",
               "-preset", "ultrafast", str(full))
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # decodes without one error
        uri = self.uri_for(cut, tmp_path)
        out = self._run(leftovers, uri, uri, "--json")
        assert out.code == ExitCode.JOB_FAILED and out.stdout == "", out.stderr
        first = out.stderr.splitlines()[0]
        assert "cut short" in first and "declares 200" in first, out.stderr
        assert leftovers.new() == []

    def test_a_missing_input_is_one_line_and_exit_2(self, pair: Pair, conformance_folder: Path,
                                                    leftovers: Leftovers) -> None:
        out = self._run(leftovers, self.missing_uri(conformance_folder),
                        self.uri_for(pair.distorted, conformance_folder), "--json")
        assert out.code == ExitCode.BAD_INPUT and out.stdout == "", out.stderr
        assert "Traceback" not in out.stderr and out.stderr.startswith("vmafx: error: "), out.stderr
        assert leftovers.new() == []

    def test_what_the_backend_reports_as_corrupt_fails_with_exit_4(self, pair: Pair, conformance_folder: Path,
                                                                   leftovers: Leftovers, tmp_path: Path) -> None:
        uri = self.corrupt_uri_for(pair.reference, tmp_path)
        if uri is None:
            pytest.skip(f"{self.backend} cannot report corrupt data (no corrupt_uri_for)")
        out = self._run(leftovers, uri, self.uri_for(pair.distorted, conformance_folder), "--json")
        assert out.code == ExitCode.CORRUPT and out.stdout == "", out.stderr
        assert "not what is stored" in out.stderr.splitlines()[0], out.stderr
        assert leftovers.new() == []

    def test_ctrl_c_while_scoring_leaves_nothing_behind(self, leftovers: Leftovers, tmp_path: Path) -> None:
        long = tmp_path / "long.mp4"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=40", "-c:v", "libx264",
               "-preset", "ultrafast", "-crf", "30", str(long))
        uri = self.uri_for(long, tmp_path)
        env = {**os.environ, **self.extra_env(), **leftovers.env}
        child = subprocess.Popen([sys.executable, "-m", "vmafx_core", "run", uri, uri, "--storage", self.storage,
                                  "--no-progress", "--json", *self.extra_args()],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                 stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _scoring(leftovers.token):
                assert child.poll() is None, child.communicate()
                time.sleep(0.05)
            assert _scoring(leftovers.token), "vmafx never started scoring"
            exposed = _credentials_in_argv(leftovers.token)
            assert exposed == [], f"a credential in a command line every local user can read: {exposed}"
            child.send_signal(signal.SIGINT)
            stdout, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode == ExitCode.INTERRUPTED and stdout == "", stderr
        assert "Traceback" not in stderr, stderr
        assert leftovers.new() == []


_USERINFO = re.compile(rb"://[^/\s:@]+:[^/\s@]+@")


def _credentials_in_argv(token: str) -> list[str]:
    """Command lines of the marked run that carry a URL with user:password (readable in /proc by all)."""
    found = []
    for pid in marked_processes(token):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if _USERINFO.search(argv):
            found.append(argv.split(b"\0")[0].decode(errors="replace"))
    return found


def _scoring(token: str) -> bool:
    """Whether a scoring ffmpeg (one running libvmaf) of the marked run is alive."""
    for pid in marked_processes(token):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"libvmaf" in argv and b"ffmpeg" in argv.split(b"\0")[0]:
            return True
    return False


__all__ = ["MARKER", "StorageBackendTests"]
