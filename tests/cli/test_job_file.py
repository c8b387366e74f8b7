"""Job files: JSON and TOML give the same job; every bad field is reported and nothing runs."""

from __future__ import annotations

import json
from pathlib import Path

from testkit.cli import run_vmafx
from testkit.media import Media


def test_toml_and_json_job_files_give_the_same_result(media: Media, tmp_path: Path) -> None:
    toml = tmp_path / "job.toml"
    toml.write_text(f'''
id = "pair-1"
[reference]
uri = "{media.ref}"
[distorted]
uri = "{media.dis}"
[scorer]
name = "libvmaf"
model = "vmaf_v0.6.1"
features = ["psnr"]
n_threads = 2
[alignment]
scale_filter = "bicubic"
''')
    js = tmp_path / "job.json"
    js.write_text(json.dumps({"id": "pair-1", "reference": {"uri": str(media.ref)},
                              "distorted": {"uri": str(media.dis)},
                              "scorer": {"features": ["psnr"], "n_threads": 2}}))
    a, b = run_vmafx("run", "--job", str(toml), "--json"), run_vmafx("run", "--job", str(js), "--json")
    assert a.code == 0 and b.code == 0, a.stderr + b.stderr
    ra, rb = a.json(), b.json()
    assert ra["job_id"] == "pair-1"
    assert ra["metrics"] == rb["metrics"]


def test_raw_source_in_job_file(media: Media, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    raw = {"width": 320, "height": 240, "pix_fmt": "yuv420p", "fps": 24}
    job.write_text(json.dumps({"reference": {"uri": str(media.ref)},
                               "distorted": {"uri": str(media.dis_yuv), "raw": raw}}))
    out = run_vmafx("run", "--job", str(job), "--json")
    assert out.code == 0, out.stderr
    assert out.json()["frames_scored"] == media.frames


def test_three_mistakes_three_lines_nothing_runs(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('''
[reference]
uri = "/nowhere/ref.mp4"
[distorted]
uri = "/nowhere/dis.yuv"
raw = { width = -5, height = 240, pix_fmt = "yuv420p", fps = 24 }
[scorer]
modle = "vmaf_v0.6.1"
n_threads = "many"
''')
    result = tmp_path / "result.json"
    out = run_vmafx("run", "--job", str(job), "-o", str(result))
    assert out.code == 2
    lines = out.stderr.strip().splitlines()
    assert lines[0] == f"vmafx: error: {job}: 3 invalid fields"
    fields = sorted(line.strip().split(":")[0] for line in lines[1:])
    assert fields == ["job.distorted.raw.width", "job.scorer.modle", "job.scorer.n_threads"]
    assert "unknown field" in out.stderr and "positive integer" in out.stderr
    assert not result.exists()
    assert "no such file" not in out.stderr  # validation failed before any input was touched


def test_job_file_problems(tmp_path: Path) -> None:
    missing = run_vmafx("run", "--job", str(tmp_path / "none.json"))
    assert missing.code == 2 and "does not exist" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = run_vmafx("run", "--job", str(bad))
    assert out.code == 2 and "is not valid JSON" in out.stderr
    assert "Traceback" not in out.stderr


def test_storage_options_are_checked_like_every_field_and_nothing_runs(tmp_path: Path) -> None:
    """A misspelt or ill-typed storage option is one line with its path, before any input is touched."""
    job = tmp_path / "job.toml"
    job.write_text('''
[reference]
uri = "/nowhere/ref.mp4"
[distorted]
uri = "s3://bucket/dis.mp4"
[storage_options]
rclone_bufer_size = "8Mi"
rclone_config = 5
http_rw_timeout = -1
remote_map = { s3 = "a/b" }
''')
    result = tmp_path / "result.json"
    out = run_vmafx("run", "--job", str(job), "-o", str(result))
    assert out.code == 2, out.stderr
    lines = [line.strip() for line in out.stderr.strip().splitlines()]
    assert lines[0] == f"vmafx: error: {job}: 4 invalid fields"
    assert sorted(lines[1:]) == [
        "job.storage_options.http_rw_timeout: -1.0 is not a positive number of seconds",
        "job.storage_options.rclone_bufer_size: unknown storage option (the installed storage backends take: "
        "http_rw_timeout, rclone_binary, rclone_buffer_size, rclone_config, rclone_io_timeout, remote_map, "
        "zip_rw_timeout)",
        "job.storage_options.rclone_config: must be a string, got 5",
        "job.storage_options.remote_map: 'a/b' is not an rclone remote name",
    ]
    assert not result.exists() and "no such file" not in out.stderr


def test_storage_option_flag_takes_each_option_as_its_type(media: Media, tmp_path: Path) -> None:
    bad = run_vmafx("run", str(media.ref), str(media.dis), "--storage-option", "rclone_buffer_size=lots",
                    "--storage-option", "http_rw_timeout=soon")
    assert bad.code == 2
    assert sorted(line.strip() for line in bad.stderr.strip().splitlines()[1:]) == [
        "job.storage_options.http_rw_timeout: could not convert string to float: 'soon'",
        "job.storage_options.rclone_buffer_size: 'lots' is not a size like 4Mi"]
    malformed = run_vmafx("run", str(media.ref), str(media.dis), "--storage-option", "rclone_buffer_size")
    assert malformed.code == 2 and malformed.stderr.strip() == (
        "vmafx: error: --storage-option 'rclone_buffer_size': give KEY=VALUE, e.g. rclone_buffer_size=8Mi")
    # a string option stays a string ("0"), a number is read as one; both are valid, the job runs
    good = run_vmafx("run", str(media.ref), str(media.dis), "--json", "--storage-option", "rclone_buffer_size=0",
                     "--storage-option", "http_rw_timeout=2.5", "--rclone-config", str(tmp_path / "unused.conf"))
    assert good.code == 0, good.stderr
    assert good.json()["frames_scored"] == media.frames


def test_a_job_files_plugins_list_is_its_allow_list_and_the_flag_wins(media: Media, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    base = {"reference": {"uri": str(media.ref)}, "distorted": {"uri": str(media.dis)}}
    job.write_text(json.dumps({**base, "scorer": {"name": "ffmpeg-metrics"}, "plugins": ["libvmaf", "local"]}))
    left_out = run_vmafx("run", "--job", str(job), "--json")
    assert left_out.code == 3, left_out.stderr
    assert "'ffmpeg-metrics' is not loaded: its plugin is not in the allowed plugins (libvmaf, local" \
        in left_out.stderr
    flag = run_vmafx("run", "--job", str(job), "--json", "--plugins", "ffmpeg-metrics,local")
    assert flag.code == 0, flag.stderr
    assert flag.json()["provenance"]["scorer_package"].startswith("vmafx-ffmpeg-metrics ")
    job.write_text(json.dumps({**base, "plugins": ["libvmaf", "local"]}))
    scored = run_vmafx("run", "--job", str(job), "--json")
    assert scored.code == 0, scored.stderr
    assert scored.json()["provenance"]["scorer_package"].startswith("vmafx ")


def test_a_bare_string_where_a_list_belongs_is_refused_not_split(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"reference": {"uri": "/data/ref.mkv"}, "distorted": {"uri": "/data/dis.mkv"},
                               "allow_roots": "/data", "plugins": "local"}))
    out = run_vmafx("run", "--job", str(job))
    assert out.code == 2, out.stderr
    assert 'job.allow_roots: must be a list of strings, e.g. ["/data"], got "/data"' in out.stderr
    assert 'job.plugins: must be a list of strings, e.g. ["local"], got "local"' in out.stderr
    assert "Traceback" not in out.stderr
