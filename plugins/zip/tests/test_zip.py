"""vmafx-zip: the conformance suite, its own promises, and installing it beside the core alone."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vmafx_core.testing import Pair, bare_vmaf, make_pair, run_vmafx
from vmafx_core.testing.storage import StorageBackendTests

ROOT = Path(__file__).resolve().parents[3]


def _archive(folder: Path, path: Path, compression: int = zipfile.ZIP_STORED) -> tuple[Path, str]:
    """A new archive holding another member first (so offsets are not trivial) and `path` in a folder."""
    archive = folder / f"set-{secrets.token_hex(4)}.zip"
    with zipfile.ZipFile(archive, "w", compression=compression) as zf:
        zf.writestr("README.txt", "a dataset\n" * 100)
        zf.write(path, f"clips/{path.name}")
    return archive, f"clips/{path.name}"


def _uri(archive: Path, member: str) -> str:
    return f"zip://{archive}!/{member}"


class TestZipConformance(StorageBackendTests):
    backend = "zip"

    def uri_for(self, path: Path, folder: Path) -> str:
        return _uri(*_archive(folder, path))

    def missing_uri(self, folder: Path) -> str:
        archive, _ = _archive(folder, Path(__file__))
        return _uri(archive, "clips/no-such-member.mp4")

    def corrupt_uri_for(self, path: Path, folder: Path) -> str | None:
        """One byte of the stored member flipped after the archive was written: it still decodes."""
        archive, member = _archive(folder, path)
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
        data = bytearray(archive.read_bytes())
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        data[start + info.file_size * 3 // 4] ^= 0x01
        archive.write_bytes(bytes(data))
        return _uri(archive, member)


def test_a_damaged_byte_ffmpeg_never_notices_still_fails_the_job(pair: Pair, tmp_path: Path) -> None:
    """A byte of the MP4's metadata (the muxer's name) flipped after the archive was written: every
    frame decodes as before, the score would be exit 0; the member's CRC-32 says otherwise."""
    archive, member = _archive(tmp_path, pair.reference)
    data = bytearray(archive.read_bytes())
    at = data.index(b"Lavf")
    data[at] ^= 0x20  # "lavf": still a valid MP4
    archive.write_bytes(bytes(data))
    uri = _uri(archive, member)
    out = run_vmafx("run", uri, uri, "--json", "--no-progress")
    assert out.code == 4 and out.stdout == "", out.stderr
    line = out.stderr.splitlines()[0]
    assert "fails its CRC-32" in line and "no score is reported" in line, out.stderr


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return make_pair(tmp_path_factory.mktemp("zip-pair"))


def test_a_deflated_member_scores_the_same_as_a_stored_one(pair: Pair, tmp_path: Path) -> None:
    truth = bare_vmaf(pair, tmp_path)
    ref = _uri(*_archive(tmp_path, pair.reference, zipfile.ZIP_DEFLATED))
    dis = _uri(*_archive(tmp_path, pair.distorted, zipfile.ZIP_DEFLATED))
    out = run_vmafx("run", ref, dis, "--json", "--no-progress")
    assert out.code == 0, out.stderr
    assert out.json()["metrics"]["vmaf"]["mean"] == truth["pooled_metrics"]["vmaf"]["mean"]


def test_its_scheme_reaches_it_below_every_builtin_priority_and_allow_root_admits_members(
        pair: Pair, tmp_path: Path) -> None:
    archive, member = _archive(tmp_path, pair.reference)
    uri = _uri(archive, member)
    out = run_vmafx("run", uri, uri, "--json", "--no-progress", "--allow-root", str(tmp_path))
    assert out.code == 0, out.stderr
    assert out.json()["provenance"]["storage"] == {"reference": "zip", "distorted": "zip"}
    outside = run_vmafx("run", uri, uri, "--json", "--allow-root", str(tmp_path / "elsewhere"))
    assert outside.code == 2 and "outside the allowed roots" in outside.stderr, outside.stderr
    climbing = run_vmafx("run", f"zip://{archive}!/clips/../{member}", uri, "--json")
    assert climbing.code == 2 and "'..'" in climbing.stderr, climbing.stderr


def test_bad_uris_and_archives_are_one_line_each(tmp_path: Path) -> None:
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"not a zip at all")
    cases = {
        "zip://relative.zip!/a.mp4": "three slashes",
        f"zip://{tmp_path}/set.zip": "name a member",
        f"zip://{tmp_path}/none.zip!/a.mp4": "no such archive",
        f"zip://{not_zip}!/a.mp4": "is not a zip archive",
    }
    for uri, message in cases.items():
        out = run_vmafx("run", uri, uri, "--json")
        assert out.code == 2 and message in out.stderr and "Traceback" not in out.stderr, (uri, out.stderr)


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           *args], capture_output=True, text=True)


def test_installs_into_a_clean_venv_beside_the_core_alone(pair: Pair, tmp_path: Path) -> None:
    """Only the core and this package (no local, no rclone): `vmafx plugins` lists it with its option,
    and it scores a member. Dependencies come from the package index pip is configured with."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    core = _pip(venv, "-e", str(ROOT), "-e", str(ROOT / "plugins" / "zip"))
    if core.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"pip could not install the core and vmafx-zip into a clean venv: {core.stderr[-2000:]}")
        pytest.skip(f"no package index for a clean venv here: {core.stderr.strip().splitlines()[-1:]}")
    vmafx = str(venv / "bin" / "vmafx")
    listed = subprocess.run([vmafx, "plugins", "--json"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert set(plugins) == {"libvmaf", "zip"}, plugins
    archive, member = _archive(tmp_path, pair.reference)
    uri = _uri(archive, member)
    scored = subprocess.run([vmafx, "run", uri, uri, "--json", "--no-progress"], capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["metrics"]["vmaf"]["mean"] > 99
    shutil.rmtree(venv, ignore_errors=True)
