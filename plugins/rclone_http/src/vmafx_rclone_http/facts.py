"""Reading a served file's container header in-process, with the per-job credential in a header.

ffmpeg gets a served input wrapped in an ffconcat script (the only way found to keep the
credential out of its argv), and the wrapper hides the file's duration, so the cut-short check
had nothing to compare with over http. PyAV (FFmpeg's libraries in this process) opens the same
URL with the credential as a request header, reads the header of the file and nothing more, and
reports what `ffmpeg -i` would have said of a local file.
"""

from __future__ import annotations

import logging
import re

from vmafx_core.types import ContainerFacts

log = logging.getLogger(__name__)

#: formats whose duration FFmpeg reads from a header, or (MPEG-TS and MPEG-PS, on an input that
#: seeks, as a served file does) from the first and last timestamps, as it does for a local file;
#: for the others (elementary streams, ...) it guesses from the bitrate, no ground for failing a job
_KNOWN_DURATION = ("mov", "mp4", "matroska", "webm", "avi", "nut", "mpegts", "mpeg")
_TAG = re.compile(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$")


def _centiseconds(seconds: float) -> float:
    """Rounded to 1/100 s as `ffmpeg -i` prints durations, so both paths give the same counts."""
    return int(seconds * 100 + 0.5) / 100


def read_container_facts(url: str, authorization: str, timeout: float) -> ContainerFacts | None:
    """The container's duration facts, or None when PyAV is missing or the header cannot be read."""
    try:
        import av
    except ImportError:
        log.debug("PyAV is not installed: no duration facts over http")
        return None
    options = {"headers": f"Authorization: {authorization}\r\n", "rw_timeout": str(int(timeout * 1_000_000)),
               "http_proxy": "none"}
    try:
        with av.open(url, options=options, timeout=timeout) as container:
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
        log.debug("could not read the container header over http: %s", type(exc).__name__)
        return None
