"""Results are written atomically, with the mode a plain open() would give them."""

from __future__ import annotations

import os
from pathlib import Path

from vmafx_core.files import write_atomically


def test_a_new_file_gets_the_umask_s_mode_not_a_temp_file_s(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomically(tmp_path / "result.json", "{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "result.json").read_text() == "{}\n"
    assert os.listdir(tmp_path) == ["result.json"]


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("old")
    target.chmod(0o604)
    write_atomically(target, "new")
    assert target.stat().st_mode & 0o777 == 0o604 and target.read_text() == "new"
