"""Small pieces whose mistakes would be silent: pooling, secrets, ffmpeg input scripts, stream parsing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vmafx_core.ffmpeg import InputArgs, _ffconcat_script, find_ffmpeg, parse_stream_info
from vmafx_core.pixfmt import frame_bytes
from vmafx_core.process import redact
from vmafx_core.result import percentile, pool
from vmafx_core.types import PreparedInput, RawVideo


def test_pool_matches_definitions() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    p = pool(values)
    assert p.mean == 25.0 and p.min == 10.0 and p.max == 40.0
    assert p.harmonic_mean == pytest.approx(4 / sum(1 / (v + 1) for v in values) - 1)
    assert p.p50 == 25.0 and p.p1 == pytest.approx(10.3)
    assert p.stdev == pytest.approx(11.180339887)


def test_pool_of_a_value_at_minus_one_does_not_divide_by_zero() -> None:
    p = pool([-1.0, 0.5, 0.9])  # SSIM can reach -1
    assert p.harmonic_mean == -1.0 and p.mean == pytest.approx(0.4 / 3)
    assert pool([-0.999999, 0.5]).harmonic_mean == pytest.approx(-1.0, abs=1e-5)  # the limit it tends to


def test_pool_prefers_libvmaf_pooled_values() -> None:
    p = pool([1.0, 2.0], {"mean": 1.4999999, "harmonic_mean": 1.4, "min": 1.0, "max": 2.0})
    assert p.mean == 1.4999999 and p.harmonic_mean == 1.4


def test_percentile_single_value() -> None:
    assert percentile([7.0], 5) == 7.0


def test_frame_bytes() -> None:
    assert frame_bytes("yuv420p", 320, 240) == 115200
    assert frame_bytes("yuv420p10le", 320, 240) == 230400
    assert frame_bytes("yuv444p", 2, 2) == 12
    assert frame_bytes("yuv420p", 3, 3) == 9 + 2 * 4


def test_redact_removes_secrets_and_url_credentials() -> None:
    text = "GET http://user:s3cr3t@127.0.0.1:80/x failed; key s3cr3t"
    out = redact(text, ["s3cr3t"])
    assert "s3cr3t" not in out and "user" not in out
    assert "http://***@127.0.0.1:80/x" in out


def test_secret_url_goes_through_a_pipe_not_argv() -> None:
    prepared = PreparedInput(role="reference", url="http://u:pw@127.0.0.1:9/b/x.mp4", display="s3://b/x.mp4",
                             url_has_secret=True, input_options=("-rw_timeout", "5000000"), secrets=("pw",))
    with InputArgs(prepared, None) as inp:
        assert not any("pw" in a for a in inp.args)
        assert inp.args[-2] == "-i" and inp.args[-1] == f"/dev/fd/{inp.pass_fds[0]}"
        script = os.read(inp.pass_fds[0], 4096).decode()
    assert script == "ffconcat version 1.0\nfile 'http://u:pw@127.0.0.1:9/b/x.mp4'\noption rw_timeout 5000000\n"


def test_raw_secret_url_gets_rawvideo_hints() -> None:
    prepared = PreparedInput(role="distorted", url="http://u:pw@127.0.0.1:9/b/x.raw", display="s3://b/x.raw",
                             url_has_secret=True)
    script = _ffconcat_script(prepared, RawVideo(320, 240, "yuv420p10le", 24.0))
    assert "file 'http://u:pw@127.0.0.1:9/b/x.raw?vmafx=.yuv'" in script
    assert "option format_whitelist rawvideo" in script
    assert "option video_size 320x240" in script and "option pixel_format yuv420p10le" in script


def test_plain_input_args() -> None:
    prepared = PreparedInput(role="reference", url="file:/a/b.yuv", display="/a/b.yuv")
    with InputArgs(prepared, RawVideo(8, 8, "yuv420p", 25.0)) as inp:
        assert inp.args == ["-f", "rawvideo", "-video_size", "8x8", "-pixel_format", "yuv420p",
                            "-framerate", "25.0", "-i", "file:/a/b.yuv"]
        assert inp.pass_fds == []


def test_parse_stream_info_with_commas_in_parentheses() -> None:
    stderr = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':
  Duration: 00:00:04.00, start: 0.000000, bitrate: 1662 kb/s
  Stream #0:0[0x1](und): Video: h264 (High 10) (avc1 / 0x31637661), yuv420p10le(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 1659 kb/s, 25 fps, 25 tbr, 12800 tbn (default)
"""
    info = parse_stream_info(stderr)
    assert info is not None
    assert (info.codec, info.pix_fmt, info.width, info.height, info.fps) == ("h264", "yuv420p10le", 1920, 1080, 25)
    assert info.expected_frames == 100 and info.bitrate_kbps == 1662


def test_frames_estimated_from_size_when_ffconcat_hides_the_duration(tmp_path: Path) -> None:
    """Through ffconcat ffmpeg says "Duration: N/A" but still a bitrate: size / bitrate for the ETA."""
    ffmpeg = find_ffmpeg()
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
                    "-frames:v", "250", "-c:v", "libx264", "-b:v", "400k", str(clip)], check=True)
    script = tmp_path / "list.ffconcat"
    script.write_text(f"ffconcat version 1.0\nfile 'file:{clip}'\n")
    said = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-f", "concat", "-safe", "0", "-i", str(script)],
                          capture_output=True, text=True).stderr
    info = parse_stream_info(said)
    assert info is not None and info.duration is None and info.expected_frames is None
    guess = info.estimated_frames(clip.stat().st_size)
    assert guess is not None and 225 <= guess <= 275, guess  # within 10 %: good enough for an ETA
    assert info.estimated_frames(None) is None


def test_parse_stream_info_without_video() -> None:
    assert parse_stream_info("  Stream #0:0: Audio: aac, 48000 Hz, stereo\n") is None


def test_declared_frames_only_where_the_container_can_be_trusted() -> None:
    mkv = """Input #0, matroska,webm, from 'a.mkv':
  Duration: 00:00:08.00, start: 0.000000, bitrate: 335 kb/s
  Stream #0:0: Video: h264 (High), yuv420p(tv, progressive), 640x360 [SAR 1:1 DAR 16:9], 25 fps, 25 tbr, 1k tbn
      Metadata:
        DURATION        : 00:00:07.960000000
  Stream #0:1: Audio: opus, 48000 Hz, stereo, fltp
      Metadata:
        DURATION        : 00:00:09.000000000
"""
    info = parse_stream_info(mkv)
    assert info is not None and info.declared_frames == 199  # the video's own duration, not the file's
    video_only = """  Duration: 00:00:04.00, start: 0.000000, bitrate: 739 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 640x360, 739 kb/s, 25 fps, 25 tbr, 12800 tbn (default)
"""
    assert parse_stream_info(video_only).declared_frames == 100  # type: ignore[union-attr]
    with_audio = video_only + "  Stream #0:1[0x2](und): Audio: aac (LC), 44100 Hz, mono, fltp, 69 kb/s (default)\n"
    assert parse_stream_info(with_audio).declared_frames is None  # type: ignore[union-attr]
    late = mkv.replace("1k tbn\n", "1k tbn, start 0.520000\n", 1)  # the tag counts from 0, the video from 0.52
    assert parse_stream_info(late).declared_frames == 186  # type: ignore[union-attr]
    guessed = "[mpegts @ 0x1] Estimating duration from bitrate, this may be inaccurate\n" + video_only
    assert parse_stream_info(guessed).declared_frames is None  # type: ignore[union-attr]
