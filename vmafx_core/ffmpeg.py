"""Finding ffmpeg, asking it what it is, and handing it inputs.

The default ffmpeg is the static build in the imageio-ffmpeg wheel (Debian's has no libvmaf).
`VMAFX_FFMPEG` or `--ffmpeg` override it. That build has no ffprobe, so inputs are probed by
reading the stream summary `ffmpeg -i` prints.

Inputs whose URL carries a credential never reach ffmpeg's argv (which every local user can read
in /proc): they are written as a one-entry ffconcat script into a pipe the child inherits.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

from vmafx_core import binfacts
from vmafx_core.errors import BadInput, EnvironmentMissing, JobFailed
from vmafx_core.process import Child, child_environment, redact
from vmafx_core.storagehealth import await_storage_failure, storage_failure
from vmafx_core.types import ContainerFacts, PreparedInput, RawVideo

ENV_FFMPEG = "VMAFX_FFMPEG"


def find_ffmpeg(override: str | None = None) -> str:
    """Path of the ffmpeg to use: `override`, then $VMAFX_FFMPEG, then the imageio-ffmpeg wheel."""
    choice = override or os.environ.get(ENV_FFMPEG)
    if choice:
        found = shutil.which(choice)
        if not found:
            raise EnvironmentMissing(f"ffmpeg {choice!r} (from {'--ffmpeg' if override else ENV_FFMPEG}) "
                                     "is not an executable file")
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise EnvironmentMissing("no ffmpeg: install the imageio-ffmpeg wheel or set VMAFX_FFMPEG") from None
    bundled = None if os.environ.get("IMAGEIO_FFMPEG_EXE") else _bundled_ffmpeg(imageio_ffmpeg.__file__)
    if bundled:
        return bundled
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise EnvironmentMissing(f"the imageio-ffmpeg wheel has no ffmpeg for this platform: {exc}") from None


def _bundled_ffmpeg(package_file: str) -> str | None:
    """The binary inside the imageio-ffmpeg wheel, found without running it.

    `get_ffmpeg_exe()` starts it once to see that it works (25 ms on every job); `ffmpeg_info`
    checks it anyway, once per binary, so only where the wheel's layout is unexpected does this
    fall back to imageio-ffmpeg's own search.
    """
    try:
        from imageio_ffmpeg._definitions import FNAME_PER_PLATFORM, get_platform

        name = FNAME_PER_PLATFORM.get(get_platform(), "")
    except (ImportError, AttributeError):
        return None
    path = os.path.join(os.path.dirname(package_file), "binaries", name)
    return path if name and os.path.isfile(path) and os.access(path, os.X_OK) else None


@attrs.frozen
class FfmpegInfo:
    path: str
    version: str
    has_libvmaf: bool


@functools.lru_cache(maxsize=8)
def ffmpeg_info(path: str) -> FfmpegInfo:
    """Version and libvmaf support of the ffmpeg at `path`.

    Asking costs an ffmpeg start, so the answer is kept per binary (`vmafx_core.binfacts`).
    """
    def ask() -> dict[str, object]:
        try:
            # without -hide_banner the version is on stderr; the filter list is on stdout
            done = subprocess.run([path, "-nostdin", "-filters"], capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL, env=child_environment())
        except OSError as exc:
            raise EnvironmentMissing(f"ffmpeg {path} does not run: {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise EnvironmentMissing(f"ffmpeg {path} did not answer `-filters` within 30s") from None
        match = re.search(r"^ffmpeg version (\S+)", done.stderr, re.MULTILINE)
        if match is None or done.returncode != 0:
            raise EnvironmentMissing(f"{path} does not answer like ffmpeg: "
                                     f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        return {"version": match.group(1),
                "has_libvmaf": bool(re.search(r"^\s*\S*\s+libvmaf\s", done.stdout, re.MULTILINE))}

    entry = binfacts.remember("ffmpeg-filters", path, ask)
    return FfmpegInfo(path=path, version=str(entry["version"]), has_libvmaf=bool(entry.get("has_libvmaf")))


def require_libvmaf(path: str) -> FfmpegInfo:
    info = ffmpeg_info(path)
    if not info.has_libvmaf:
        raise EnvironmentMissing(f"ffmpeg {path} ({info.version}) is built without libvmaf; "
                                 "use the imageio-ffmpeg wheel's ffmpeg or set VMAFX_FFMPEG")
    return info


@attrs.frozen
class StreamInfo:
    """The first video stream of an input, as `ffmpeg -i` describes it."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    fps: float | None
    duration: float | None
    #: the overall bitrate ffmpeg reports, kb/s; known through the ffconcat path, where duration is not
    bitrate_kbps: float | None = None
    #: frames the container says the video has, where that can be trusted (see `_declared_frames`);
    #: fewer decoded means the input was cut short
    declared_frames: int | None = None
    #: the rate ffmpeg guesses from the timestamps ("tbr"); differs from `fps` (the average) in a VFR file
    tbr: float | None = None
    #: "progressive", "tt" (top first), "bb", "tb", "bt", or None when the stream does not say
    field_order: str | None = None
    #: degrees of the display matrix (ffmpeg turns the picture this way when decoding)
    rotation: float = 0.0
    #: sample aspect ratio "N:M" when the stream states one
    sar: str | None = None
    #: what the stream states of its colour: ("range", "tv"), ("matrix", "bt709"), ... (`vmafx_core.colour`)
    colour_tags: tuple[tuple[str, str], ...] = ()
    #: HDR side data as ffmpeg prints it: mastering display, content light level, Dolby Vision configuration
    hdr_metadata: tuple[str, ...] = ()

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height of the picture as decoded: ffmpeg applies the rotation by default."""
        if round(abs(self.rotation)) % 180 == 90:
            return self.height, self.width
        return self.width, self.height

    @property
    def expected_frames(self) -> int | None:
        if self.fps and self.duration:
            return round(self.fps * self.duration)
        return None

    def estimated_frames(self, size: int | None) -> int | None:
        """Frames guessed from the object's size and bitrate: for a progress bar's ETA, never a check."""
        if not (size and self.bitrate_kbps and self.fps):
            return None
        return max(1, round(size * 8 / (self.bitrate_kbps * 1000) * self.fps))


class InputArgs:
    """The argv fragment for one ffmpeg input, and the pipe it may need. Close after the child starts."""

    def __init__(self, prepared: PreparedInput, raw: RawVideo | None, seek: float | None = None) -> None:
        """`seek`: start decoding at this many seconds from the input's start (`-ss`, ffmpeg's exact
        seek: it decodes from the keyframe before and drops what precedes); a segment of a long pair."""
        self.pass_fds: list[int] = []
        self.args: list[str] = ["-ss", f"{seek:.6f}"] if seek else []
        self._fds: list[int] = []
        raw_opts = _raw_options(raw)
        if prepared.url_has_secret:
            script = _ffconcat_script(prepared, raw)
            read_fd, write_fd = os.pipe()
            self._fds.append(read_fd)
            with os.fdopen(write_fd, "w", encoding="utf-8") as pipe:
                pipe.write(script)  # a few hundred bytes: far below the pipe's buffer
            self.pass_fds.append(read_fd)
            self.args += ["-f", "concat", "-safe", "0",
                         "-protocol_whitelist", "fd,pipe,file,http,https,tcp,tls,crypto",
                         "-i", f"/dev/fd/{read_fd}"]
        else:
            for name, value in _pairs(prepared.input_options):
                self.args += [name, value]
            if raw is not None:
                self.args += ["-f", "rawvideo"]
                for name, value in raw_opts:
                    self.args += [f"-{name}", value]
            self.args += ["-i", prepared.url]

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def __enter__(self) -> InputArgs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pairs(options: Sequence[str]) -> list[tuple[str, str]]:
    if len(options) % 2:
        raise ValueError(f"input_options must be (-name, value) pairs, got {options!r}")
    return [(options[i], options[i + 1]) for i in range(0, len(options), 2)]


def _raw_options(raw: RawVideo | None) -> list[tuple[str, str]]:
    if raw is None:
        return []
    return [("video_size", f"{raw.width}x{raw.height}"), ("pixel_format", raw.pix_fmt),
            ("framerate", repr(raw.fps))]


def _ffconcat_script(prepared: PreparedInput, raw: RawVideo | None) -> str:
    url = prepared.url
    if "'" in url or "\n" in url:
        raise BadInput(f"{prepared.display}: the URL cannot be handed to ffmpeg safely (quote or newline)")
    lines = ["ffconcat version 1.0"]
    if raw is not None and not urlsplit(url).path.lower().endswith(".yuv"):
        # rawvideo has no probe: ffmpeg picks it by a .yuv extension, which a query string provides
        url += ("&" if urlsplit(url).query else "?") + "vmafx=.yuv"
    lines.append(f"file '{url}'")
    for name, value in _pairs(prepared.input_options):
        lines.append(f"option {name.lstrip('-')} {value}")
    if raw is not None:
        lines.append("option format_whitelist rawvideo")
        for name, value in _raw_options(raw):
            lines.append(f"option {name} {value}")
    return "\n".join(lines) + "\n"


_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: (?P<rest>.*)$")
_STREAM_START_RE = re.compile(r", start (-?\d+(?:\.\d+)?)")
_ANY_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+")
#: a stream's own duration tag, as Matroska/WebM muxers write it: "DURATION : 00:00:08.000000000"
_STREAM_DURATION_RE = re.compile(r"^\s+DURATION(?:-\w+)?\s*: (\d+):(\d+):(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_BITRATE_RE = re.compile(r"^\s*Duration: .*, bitrate: (\d+(?:\.\d+)?) kb/s")


def _split_top(text: str) -> list[str]:
    """Split on ', ' outside parentheses and brackets."""
    parts, depth, cur = [], 0, ""
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0 and text[i + 1:i + 2] == " ":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def parse_stream_info(stderr: str) -> StreamInfo | None:
    """Read the first video stream out of `ffmpeg -i`'s summary; None when there is none."""
    duration = bitrate = None
    video: StreamInfo | None = None
    streams = 0
    stream_duration: float | None = None
    video_start = 0.0
    in_video_metadata = False
    for line in stderr.splitlines():
        d = _DURATION_RE.search(line)
        if d and duration is None:
            duration = _seconds(d.group(1), d.group(2), d.group(3))
        b = _BITRATE_RE.search(line)
        if b and bitrate is None:
            bitrate = float(b.group(1))
        if _ANY_STREAM_RE.match(line):
            streams += 1
            in_video_metadata = False
        turn = _ROTATION_RE.match(line)
        if turn and in_video_metadata and video is not None and not video.rotation:
            video = attrs.evolve(video, rotation=float(turn.group(1)))
        side = _HDR_SIDE_DATA_RE.match(line)
        if side and in_video_metadata and video is not None:
            video = attrs.evolve(video, hdr_metadata=(*video.hdr_metadata, side.group(1).strip()))
        tag = _STREAM_DURATION_RE.match(line)
        if tag and in_video_metadata and stream_duration is None:
            stream_duration = _seconds(tag.group(1), tag.group(2), tag.group(3))
        m = _STREAM_RE.match(line)
        if not m or video is not None:
            continue
        parts = _split_top(m.group("rest"))
        codec = parts[0].split(" ")[0]
        pix_fmt, size, fps, tbr, field_order, sar = "", None, None, None, None, None
        colour_tags: tuple[tuple[str, str], ...] = ()
        for part in parts[1:]:
            sar_match = re.search(r"\[SAR (\d+:\d+) DAR", part)
            if sar_match:
                sar = sar_match.group(1)
            if re.match(r"^[a-z][a-z0-9_]*\(", part) and size is None:
                field_order = _field_order(part)
                colour_tags = _colour_tags(part)
            r = re.match(r"^([\d.]+)(k?) tbr$", part)
            if r:
                tbr = float(r.group(1)) * (1000 if r.group(2) else 1)
            s = re.match(r"^(\d+)x(\d+)", part)
            if s and size is None:
                size = (int(s.group(1)), int(s.group(2)))
            elif re.match(r"^[a-z][a-z0-9_]*(\(.*\))?$", part) and not pix_fmt and size is None:
                pix_fmt = part.split("(")[0]
            f = re.match(r"^([\d.]+)(k?) fps$", part)
            if f:
                fps = float(f.group(1)) * (1000 if f.group(2) else 1)
        if size is None:
            continue
        video = StreamInfo(codec=codec, width=size[0], height=size[1], pix_fmt=pix_fmt, fps=fps,
                           duration=duration, bitrate_kbps=bitrate, tbr=tbr, field_order=field_order, sar=sar,
                           colour_tags=colour_tags)
        in_video_metadata = True
        start = _STREAM_START_RE.search(line)  # a stream that starts late: its tag counts from 0
        video_start = float(start.group(1)) if start else 0.0
    if video is None:
        return None
    if stream_duration is not None:
        stream_duration -= video_start
    return attrs.evolve(video, declared_frames=_declared_frames(
        video.fps, stream_duration, duration, only_stream=streams == 1,
        estimated="Estimating duration from bitrate" in stderr))


_ROTATION_RE = re.compile(r"^\s+display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_FIELD_ORDERS = {"progressive": "progressive", "top first": "tt", "bottom first": "bb",
                 "top coded first (swapped)": "tb", "bottom coded first (swapped)": "bt"}


def _field_order(pix_fmt_part: str) -> str | None:
    """The field order in `yuv420p(tv, bt709, top first)`, as ffmpeg's field_order names it."""
    inner = pix_fmt_part[pix_fmt_part.index("(") + 1:].removesuffix(")")
    for word in _split_top(inner.replace(",", ", ")):
        if word.strip() in _FIELD_ORDERS:
            return _FIELD_ORDERS[word.strip()]
    return None


#: side data lines of a video stream that describe HDR: what the mastering display was, how bright it
#: gets, and a Dolby Vision configuration
_HDR_SIDE_DATA_RE = re.compile(r"^\s+((?:Mastering Display Metadata|Content Light Level Metadata|"
                               r"DOVI configuration record|Dolby Vision|HDR10\+|Ambient Viewing).*)$",
                               re.IGNORECASE)


def _colour_tags(pix_fmt_part: str) -> tuple[tuple[str, str], ...]:
    """Range, matrix/primaries/transfer and chroma location in `yuv420p(tv, bt709, progressive, left)`."""
    from vmafx_core.colour import parse_colour_words

    inner = pix_fmt_part[pix_fmt_part.index("(") + 1:].removesuffix(")")
    return tuple(sorted(parse_colour_words(inner.split(",")).items()))


def _seconds(hours: str, minutes: str, seconds: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _declared_frames(fps: float | None, stream_duration: float | None, duration: float | None, *,
                     only_stream: bool, estimated: bool) -> int | None:
    """The video's frame count as its container states it, where that statement can be trusted.

    The video stream's own duration (Matroska/WebM write one) can; the file's duration only when
    the video is its only stream (with audio it is the longer of the two) and the demuxer did not
    guess it from the bitrate (MPEG-TS and other headerless formats).
    """
    if not fps:
        return None
    if stream_duration:
        return round(stream_duration * fps)
    if duration and only_stream and not estimated:
        return round(duration * fps)
    return None


def probe(ffmpeg: str, prepared: PreparedInput, raw: RawVideo | None = None, timeout: float = 120.0) -> StreamInfo:
    """Describe the first video stream of an input; BadInput when it has none."""
    if raw is not None:
        return StreamInfo(codec="rawvideo", width=raw.width, height=raw.height, pix_fmt=raw.pix_fmt,
                          fps=raw.fps, duration=None)
    with InputArgs(prepared, raw) as inp:
        # verbose: only then does the stream summary name the chroma location ("left", "center")
        child = Child([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "verbose", *inp.args], name="ffmpeg-probe",
                      pass_fds=inp.pass_fds, secrets=prepared.secrets, tail_lines=200)
        inp.close()
        started = time.monotonic()
        try:
            _wait_watching(child, prepared, timeout)
        except subprocess.TimeoutExpired:
            child.stop()
            cause = prepared.stall_cause(started) if prepared.stall_cause is not None else None
            if cause is not None:
                raise type(cause)(f"{prepared.role} {prepared.display}: {cause.message} for {timeout:.0f}s while "
                                  "reading its header; no score is reported", detail=cause.detail) from None
            raise JobFailed(f"{prepared.role} {prepared.display}: no answer within {timeout:.0f}s "
                            "while reading its header") from None
        finally:
            child.stop()
    text = child.tail()
    info = parse_stream_info(text)
    if info is not None:
        if prepared.url_has_secret:
            info = _with_facts(info, _container_facts(prepared, timeout))
        return info
    failure = await_storage_failure([prepared], "while reading its header")
    if failure is not None:  # the store failed the read: not the input's fault
        raise failure
    raise BadInput(f"{prepared.role} {prepared.display}: {_input_problem(text)}",
                   detail=redact(text, prepared.secrets))


def _container_facts(prepared: PreparedInput, timeout: float) -> ContainerFacts | None:
    """The backend's own `container_facts` when it gives one, else the core's read of the header."""
    if prepared.container_facts is not None:
        return prepared.container_facts()
    from vmafx_core.facts import read_container_facts

    return read_container_facts(prepared, min(timeout, 30.0))


def _wait_watching(child: Child, prepared: PreparedInput, timeout: float) -> None:
    """Wait for a probe, failing as soon as the input's storage reports it broke."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            child.wait(min(0.2, max(deadline - time.monotonic(), 0.0)))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        failure = storage_failure([prepared], "while reading its header")
        if failure is not None:
            raise failure


def _with_facts(info: StreamInfo, facts: ContainerFacts | None) -> StreamInfo:
    """The duration and declared frame count an ffconcat wrapper hid, from the backend's own read of
    the header: the same facts, and the same cut-short check, as for a local file."""
    if facts is None:
        return info
    declared = info.declared_frames or _declared_frames(info.fps, facts.video_duration, facts.duration,
                                                        only_stream=facts.streams == 1,
                                                        estimated=facts.estimated)
    return attrs.evolve(info, duration=info.duration if info.duration is not None else facts.duration,
                        declared_frames=declared)


def _input_problem(stderr: str) -> str:
    """The most telling reason an input could not be opened, from ffmpeg's stderr."""
    checks = [
        (r"404 Not Found|No such file or directory", "no such file or object"),
        (r"401 Unauthorized|403 Forbidden", "access denied"),
        (r"Invalid data found when processing input|moov atom not found", "not a video ffmpeg can read"),
        (r"Connection refused|timed out", "cannot connect to the storage server"),
        (r"HTTP error 5\d\d|Server returned 5", "the storage server failed (HTTP 5xx)"),
    ]
    for pattern, message in checks:
        if re.search(pattern, stderr):
            return message
    if re.search(r"Stream #\d+:\d+", stderr):
        return "has no video stream"
    last = [ln for ln in stderr.splitlines() if ln.strip()]
    return f"ffmpeg cannot read it ({last[-1].strip() if last else 'no message'})"
