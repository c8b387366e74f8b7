"""A small dataset laid out like a real one, made by the real ffmpeg: references and encodes of
them made "elsewhere" (x264 and x265 at four CRFs, with an audio track), named by what they are.

    refs/{clip}.mp4
    encodes/{clip}_{codec}_crf{crf}.mp4

It feeds the tests of job generation, labels, measured bitrates and rate-quality curves, and
the worked example of the README. `video_packet_bytes` is the bitrate's ground truth: the sizes
of a file's video packets as ffmpeg's framecrc muxer lists them, without decoding anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import attrs

from testkit.media import ffmpeg_run
from vmafx_core.ffmpeg import find_ffmpeg

CLIPS = {"bars": "testsrc2", "pattern": "testsrc"}
CODECS = {"x264": ["-c:v", "libx264", "-preset", "veryfast"],
          "x265": ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error"]}
CRFS = (22, 30, 38, 46)
FPS = 24
FRAMES = 24
SIZE = "320x240"


@attrs.frozen
class Dataset:
    folder: Path
    refs: Path  #: folder of the references
    encodes: Path  #: folder of the encodes

    def encode(self, clip: str, codec: str, crf: int) -> Path:
        return self.encodes / f"{clip}_{codec}_crf{crf}.mp4"


def make_dataset(folder: Path) -> Dataset:
    """Two 1 s 320x240 references and 16 encodes of them (2 codecs x 4 CRFs each), with audio."""
    data = Dataset(folder, folder / "refs", folder / "encodes")
    data.refs.mkdir(parents=True, exist_ok=True)
    data.encodes.mkdir(parents=True, exist_ok=True)
    for clip, source in CLIPS.items():
        ref = data.refs / f"{clip}.mp4"
        ffmpeg_run("-f", "lavfi", "-i", f"{source}=size={SIZE}:rate={FPS}:duration={FRAMES / FPS}",
                   "-c:v", "libx264", "-crf", "8", "-pix_fmt", "yuv420p", str(ref))
        for codec, args in CODECS.items():
            for crf in CRFS:  # an audio track: the container's size is not the video's
                ffmpeg_run("-i", str(ref), "-f", "lavfi", "-i", f"sine=frequency=440:duration={FRAMES / FPS}",
                           "-map", "0:v", "-map", "1:a", *args, "-crf", str(crf), "-pix_fmt", "yuv420p",
                           "-c:a", "aac", "-b:a", "128k", str(data.encode(clip, codec, crf)))
    return data


def video_packet_bytes(path: Path) -> tuple[int, int]:
    """(bytes of the first video stream's packets, packets) of `path`, read by stream copy into framecrc."""
    out = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0",
                          "-c", "copy", "-f", "framecrc", "-"], check=True, capture_output=True, text=True).stdout
    sizes = [int(line.split(",")[4]) for line in out.splitlines() if line and not line.startswith("#")]
    return sum(sizes), len(sizes)


if __name__ == "__main__":  # python -m testkit.dataset FOLDER: the worked example's dataset
    import sys

    made = make_dataset(Path(sys.argv[1]))
    print(f"made {made.refs} and {made.encodes}")
