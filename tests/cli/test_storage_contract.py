"""What the storage contract promises users whatever the backend: said lengths, listed options,
hints typed as they must be, validator errors on one line."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run
from vmafx_core.job import structure


def test_an_input_whose_length_cannot_be_trusted_is_said_in_the_result(tmp_path: Path) -> None:
    """With a longer audio track the file's duration is the audio's: no declared video length, and
    the result says the cut-short check could not use one."""
    clip = tmp_path / "audio.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=2", "-f", "lavfi", "-i",
               "sine=duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip))
    out = run_vmafx("run", str(clip), str(clip), "--json")
    assert out.code == 0, out.stderr
    result = out.json()
    assert result["provenance"]["reference_stream"]["declared_frames"] is None
    unknown = [n for n in result["notes"] if "length is unknown" in n]
    assert len(unknown) == 2 and unknown[0].startswith(f"reference {clip}:"), result["notes"]
    plain = tmp_path / "video.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=2", "-c:v", "libx264",
               "-preset", "ultrafast", str(plain))
    known = run_vmafx("run", str(plain), str(plain), "--json")
    assert known.code == 0 and not [n for n in known.json()["notes"] if "length is unknown" in n], known.stdout


def test_plugins_lists_every_backends_options_priority_and_schemes() -> None:
    out = run_vmafx("plugins", "--json")
    assert out.code == 0, out.stderr
    backends = {b["name"]: b for p in out.json()["plugins"] for b in p["storage_backends"]}
    http = {o["name"]: o for o in backends["rclone-http"]["options"]}
    assert http["http_rw_timeout"] == {"name": "http_rw_timeout", "type": "float", "default": 20.0}
    assert "rclone_config" in http and backends["rclone-http"]["auto_priority"] == 20
    assert backends["zip"]["schemes"] == ["zip"] and backends["zip"]["auto_priority"] == 5
    assert backends["local"]["options"] == [] and backends["local"]["auto_priority"] == 100
    text = run_vmafx("plugins")
    assert "      option zip_rw_timeout: float = 20.0" in text.stdout.splitlines(), text.stdout


def test_the_verbose_hint_names_the_flag_where_it_is_typed(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    out = run_vmafx("run", str(junk), str(junk))
    assert out.code == 2, out.stderr
    hint = out.stderr.splitlines()[1]
    assert hint == "  (run `vmafx -v run ...` to see ffmpeg's/rclone's last lines)", out.stderr
    verbose = run_vmafx("-v", "run", str(junk), str(junk))  # as the hint says: it is an option of vmafx
    assert verbose.code == 2 and "no such option" not in verbose.stderr.lower(), verbose.stderr
    assert len(verbose.stderr.splitlines()) > 2, verbose.stderr


@attrs.frozen
class _Choice:
    mode: str = attrs.field(default="a", validator=attrs.validators.in_(["a", "b"]))
    count: int = attrs.field(default=1, validator=attrs.validators.instance_of(int))


def test_an_attrs_validator_error_is_one_readable_line() -> None:
    _, errors = structure({"mode": "c"}, _Choice, "job.scorer")
    assert errors == ["job.scorer: 'mode' must be in ['a', 'b'] (got 'c')"]  # not the raw tuple of its args
    _, errors = structure({"count": True}, _Choice, "job.scorer")
    assert len(errors) == 1 and "Attribute(" not in json.dumps(errors), errors
