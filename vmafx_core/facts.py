"""Reading the container header of an input whose URL carries a secret, in this process.

ffmpeg gets such an input wrapped in an ffconcat script (the way to keep the credential out of
its argv), and the wrapper hides the file's duration, so the cut-short check would have nothing to
compare with. PyAV (FFmpeg's libraries in this process) opens the same URL with the same input
options, reads the header and nothing more, and reports what `ffmpeg -i` would have said of a local
file. The core does this for every backend, so no backend has to, and none can forget to.
"""

from __future__ import annotations

import logging
import re

from vmafx_core.types import ContainerFacts, PreparedInput

log = logging.getLogger(__name__)

#: formats whose duration FFmpeg reads from a header, or (MPEG-TS and MPEG-PS, on an input that
#: seeks, as a served file does) from the first and last timestamps, as it does for a local file;
#: for the others (elementary streams, ...) it guesses from the bitrate, no ground for failing a job
_KNOWN_DURATION = ("mov", "mp4", "matroska", "webm", "avi", "nut", "mpegts", "mpeg")
_TAG = re.compile(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$")


def _centiseconds(seconds: float) -> float:
    """Rounded to 1/100 s as `ffmpeg -i` prints durations, so both paths give the same counts."""
    return int(seconds * 100 + 0.5) / 100


def read_container_facts(prepared: PreparedInput, timeout: float) -> ContainerFacts | None:
    """The container's duration facts of `prepared`, read through its own URL and input options;
    None when PyAV is missing or the header cannot be read (the result then says the length is
    unknown). Nothing of the URL reaches a log: only the exception's type."""
    try:
        import av
    except ImportError:
        log.debug("PyAV is not installed: no duration facts for inputs behind a secret URL")
        return None
    options = {"rw_timeout": str(int(timeout * 1_000_000))}
    pairs = prepared.input_options
    for i in range(0, len(pairs) - 1, 2):
        options[pairs[i].lstrip("-")] = pairs[i + 1]
    try:
        with av.open(prepared.url, options=options, timeout=timeout) as container:
            formats = set(container.format.name.split(","))
            video = container.streams.video[0] if container.streams.video else None
            duration = container.duration / 1_000_000 if container.duration else None
            video_duration = None
            if video is not None:
                tag = next((v for k, v in video.metadata.items() if k.upper().startswith("DURATION")), None)
                match = _TAG.match(tag.strip()) if tag else None
                if match:
                    video_duration = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
            return ContainerFacts(duration=_centiseconds(duration) if duration is not None else None,
                                  video_duration=video_duration, streams=len(container.streams),
                                  estimated=not formats & set(_KNOWN_DURATION))
    except Exception as exc:  # noqa: BLE001 - facts are a bonus: ffmpeg reports a real failure itself
        log.debug("%s %s: could not read the container header in-process: %s", prepared.role, prepared.display,
                  type(exc).__name__)
        return None
