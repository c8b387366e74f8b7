"""Test support for plugin authors, shipped with vmafx so `pip install vmafx` gives it to them.

Everything here runs the real things: ffmpeg from the imageio-ffmpeg wheel, the `vmafx` CLI in a
child process, and the plugin as installed. The pieces:

- `make_pair(folder)`: a small reference (2 s, 320x240, 24 fps, H.264) and a degraded, scaled
  distorted encode of it, made by ffmpeg.
- `bare_vmaf(pair, folder)`: the ground truth for that pair: both decoded to raw YUV first (the
  distorted scaled to the reference's size by hand), then a bare `ffmpeg -lavfi libvmaf` on the
  raw frames. vmafx must give exactly this mean, whatever storage the inputs came through.
- `run_vmafx(*args)`: the real CLI in a child process, JSON on stdout, as a user runs it.
- `Leftovers`: what a run may leave behind (processes that carry a marker in their environment,
  vmafx temp folders, threads of this process), snapshotted before and compared after.
- `vmafx_core.testing.storage.StorageBackendTests`: the conformance suite a storage backend runs
  against itself (pytest; see its docstring).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from vmafx_core.ffmpeg import find_ffmpeg

#: set in the environment of every child `run_vmafx` starts, so `Leftovers` finds its descendants
MARKER = "VMAFX_TESTING_RUN"
WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 24, 48


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg vmafx uses, quietly; CalledProcessError when it fails."""
    subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


@attrs.frozen
class Pair:
    """A reference and a distorted encode of it, as local files."""

    reference: Path
    distorted: Path
    frames: int = FRAMES
    width: int = WIDTH
    height: int = HEIGHT


def make_pair(folder: Path, *, seconds: float = FRAMES / FPS, suffix: str = ".mp4") -> Pair:
    """A reference (testsrc2, x264 crf 12, moov first) and a 160x120 crf 34 distorted, in `folder`."""
    reference, distorted = folder / f"ref{suffix}", folder / f"dis{suffix}"
    frames = round(seconds * FPS)
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}", "-frames:v", str(frames),
           "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(reference))
    ffmpeg("-i", str(reference), "-vf", "scale=160:120", "-c:v", "libx264", "-crf", "34",
           "-movflags", "+faststart", str(distorted))
    return Pair(reference, distorted, frames)


def bare_vmaf(pair: Pair, folder: Path) -> dict[str, Any]:
    """libvmaf's own JSON log for `pair`, from raw decodes paired frame by frame (the ground truth)."""
    ref_yuv, dis_yuv, log = folder / "bare-ref.yuv", folder / "bare-dis.yuv", folder / "bare.json"
    ffmpeg("-i", str(pair.reference), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(ref_yuv))
    ffmpeg("-i", str(pair.distorted), "-vf", f"scale={pair.width}:{pair.height}:flags=bicubic",
           "-f", "rawvideo", "-pix_fmt", "yuv420p", str(dis_yuv))
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{pair.width}x{pair.height}", "-r", str(FPS)]
    ffmpeg(*raw, "-i", str(dis_yuv), *raw, "-i", str(ref_yuv), "-lavfi",
           f"[0:v][1:v]libvmaf=log_fmt=json:log_path={log}:n_threads=2", "-f", "null", "-")
    data: dict[str, Any] = json.loads(log.read_text())
    for path in (ref_yuv, dis_yuv, log):
        path.unlink()
    return data


@attrs.frozen
class CliRun:
    """What the CLI did: exit code, stdout (JSON), stderr (one line per error)."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_vmafx(*args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> CliRun:
    """The real `vmafx` CLI in a child process (this Python, so the plugins installed here)."""
    full = {**os.environ, MARKER: os.environ.get(MARKER) or secrets.token_hex(8), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vmafx_core", *args], capture_output=True, text=True,
                          env=full, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def marked_processes(token: str) -> set[int]:
    """Live processes whose environment carries `MARKER=token` (a run's children, wherever reparented)."""
    found = set()
    needle = f"{MARKER}={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if stat.rsplit(")", 1)[-1].split()[0] != "Z":
                    found.add(int(entry))
        except OSError:
            continue
    return found


@attrs.define
class Leftovers:
    """What runs could leave behind: `new()` says what appeared since this was made.

    The runs get `env`: a marker every process they start inherits (so their processes are found
    wherever they were reparented, and nobody else's are) and a private TMPDIR (so their temp
    folders are told apart from those of anything else running on the machine).
    """

    folder: Path  #: the runs' TMPDIR: empty now, and must be empty again after them
    token: str = attrs.field(factory=lambda: secrets.token_hex(8))
    threads: set[int] = attrs.field(factory=lambda: {t.ident or 0 for t in threading.enumerate()})

    @classmethod
    def start(cls, parent: Path) -> Leftovers:
        folder = Path(tempfile.mkdtemp(prefix="runs-", dir=parent))
        return cls(folder)

    @property
    def env(self) -> dict[str, str]:
        """The environment to give the runs (`run_vmafx(..., env=leftovers.env)`)."""
        return {MARKER: self.token, "TMPDIR": str(self.folder)}

    def new(self) -> list[str]:
        """Processes of the runs still alive, what they left in their TMPDIR, threads started in this process."""
        found = [f"process {pid}" for pid in sorted(marked_processes(self.token))]
        found += [f"temp {entry.name}" for entry in sorted(self.folder.iterdir())]
        found += [f"thread {t.name}" for t in threading.enumerate()
                  if (t.ident or 0) not in self.threads and t.is_alive()]
        return found
