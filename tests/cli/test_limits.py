"""Allowed roots, empty inputs, and job limits on local files."""

from __future__ import annotations

import os
from pathlib import Path

from testkit.cli import run_vmafx
from testkit.media import Media


def test_allow_root_admits_inputs_inside(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--allow-root", str(media.folder))
    assert out.code == 0, out.stderr


def test_allow_root_refuses_dotdot_and_symlink_escapes(media: Media, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ref.mp4").write_bytes(media.ref.read_bytes())
    (allowed / "link.mp4").symlink_to(media.dis)  # points outside
    escape = f"{allowed}/../../{media.folder.name}/dis.mp4"
    for dis in (str(allowed / "link.mp4"), escape, str(media.dis)):
        out = run_vmafx("run", str(allowed / "ref.mp4"), dis, "--allow-root", str(allowed))
        assert out.code == 2, out.stderr
        assert "outside the allowed roots" in out.stderr
        assert "frames" not in out.stderr  # refused before anything ran


def test_allow_root_matches_whole_folder_names(media: Media, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data-other").mkdir()
    os.link(media.ref, tmp_path / "data-other" / "ref.mp4")
    out = run_vmafx("run", str(tmp_path / "data-other" / "ref.mp4"), str(tmp_path / "data-other" / "ref.mp4"),
                    "--allow-root", str(tmp_path / "data"))
    assert out.code == 2 and "outside the allowed roots" in out.stderr


def test_empty_input_is_one_clear_line(media: Media, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    out = run_vmafx("run", str(media.ref), str(empty))
    assert out.code == 2
    assert out.stderr.strip() == f"vmafx: error: distorted {empty}: is empty (0 bytes)"


def test_bad_limits_are_field_errors(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--stall-timeout", "-1", "--timeout", "0")
    assert out.code == 2
    assert "job.limits.stall_timeout" in out.stderr and "job.limits.timeout" in out.stderr


def test_timeout_stops_a_long_job(tmp_path: Path) -> None:
    from testkit.media import clip_720p

    clip = clip_720p(tmp_path / "long.mp4", 60)
    out = run_vmafx("run", str(clip), str(clip), "--timeout", "2")
    assert out.code == 1
    assert "ran past its --timeout" in out.stderr
