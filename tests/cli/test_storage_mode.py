"""VMAFX_STORAGE_MODE: this machine's storage mode, what a job that says `auto` uses (the Helm
chart's `storage.mode` on its nodes). A job that names its storage keeps it; a wrong value is one
line and exit 3 (it is the machine's set-up, not the job, that is wrong)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.cli import run_vmafx
from testkit.media import Media


@pytest.mark.parametrize("value", ["s3fs", "rclone_http", "AUTO"])
def test_an_unknown_mode_is_one_line_and_exit_3(media: Media, value: str) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", env={"VMAFX_STORAGE_MODE": value})
    assert out.code == 3, out.stderr
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"vmafx: error: VMAFX_STORAGE_MODE={value!r} is not a storage mode; set it to one of auto, local, "
        "rclone-http, rclone-mount, zip, or unset it"]


def test_a_wrong_mode_is_refused_even_for_a_job_that_names_its_storage(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--storage", "local",
                    env={"VMAFX_STORAGE_MODE": "nfs"})
    assert out.code == 3 and "VMAFX_STORAGE_MODE='nfs'" in out.stderr


def test_auto_uses_the_machine_s_mode(media: Media) -> None:
    # rclone-http reads remote URIs only: a local pair under it is refused, which shows the mode
    # was taken (under plain auto the same pair is scored locally, below)
    out = run_vmafx("run", str(media.ref), str(media.dis), "--json", env={"VMAFX_STORAGE_MODE": "rclone-http"})
    assert out.code == 2, out.stderr
    assert out.stderr.strip() == (f"vmafx: error: storage 'rclone-http' (the VMAFX_STORAGE_MODE of this machine) "
                                  f"cannot read {str(media.ref)!r}; the installed storage local reads it "
                                  "(--storage local, or auto)")
    for value in ("local", "auto", "", " local "):
        ok = run_vmafx("run", str(media.ref), str(media.dis), "--json", env={"VMAFX_STORAGE_MODE": value})
        assert ok.code == 0, (value, ok.stderr)
        assert ok.json()["provenance"]["storage"] == {"reference": "local", "distorted": "local"}


def test_a_job_that_names_its_storage_keeps_it(media: Media) -> None:
    out = run_vmafx("run", str(media.ref), str(media.dis), "--storage", "local", "--json",
                    env={"VMAFX_STORAGE_MODE": "rclone-http"})
    assert out.code == 0, out.stderr
    assert out.json()["provenance"]["storage"] == {"reference": "local", "distorted": "local"}


def test_a_batch_follows_the_machine_s_mode_job_by_job(media: Media, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    pair = {"reference": {"uri": str(media.ref)}, "distorted": {"uri": str(media.dis)}}
    jobs.write_text(json.dumps({"id": "says-auto", **pair}) + "\n"
                    + json.dumps({"id": "says-local", "storage": "local", **pair}) + "\n")
    results = tmp_path / "results.jsonl"
    out = run_vmafx("batch", str(jobs), "--out", str(results), "--no-progress",
                    env={"VMAFX_STORAGE_MODE": "rclone-http"})
    assert out.code == 1, out.stderr
    got = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert got["says-auto"]["status"] == "failed" and got["says-auto"]["exit_code"] == 2
    assert "(the VMAFX_STORAGE_MODE of this machine) cannot read" in got["says-auto"]["error"]
    assert got["says-local"]["status"] == "ok"


def test_doctor_shows_the_machine_s_mode_and_fails_on_a_wrong_one() -> None:
    out = run_vmafx("doctor", "--json", env={"VMAFX_STORAGE_MODE": "rclone-http"})
    (row,) = [c for c in json.loads(out.stdout)["checks"] if c["check"] == "storage mode"]
    assert row["ok"] and "rclone-http" in row["detail"]
    bad = run_vmafx("doctor", "--json", env={"VMAFX_STORAGE_MODE": "bogus"})
    assert bad.code == 3
    (row,) = [c for c in json.loads(bad.stdout)["checks"] if c["check"] == "storage mode"]
    assert not row["ok"] and "'bogus' is not a storage mode" in row["detail"]
