"""Which batch jobs share a pass, and how many at once."""

from __future__ import annotations

from typing import Any

from vmafx_core.batch.grouping import BASE_MIB, MAX_DEFAULT_GROUP, PER_DISTORTED_MIB, default_group_size, units
from vmafx_core.batch.jobsfile import Entry


def _entry(line: int, ref: str, dis: str, **extra: Any) -> Entry:
    return Entry(line=line, id=f"j{line}", data={"id": f"j{line}", "reference": {"uri": ref},
                                                "distorted": {"uri": dis}, **extra})


def test_jobs_of_one_reference_and_settings_share_units_of_near_equal_size() -> None:
    entries = [_entry(i, "a.mkv", f"a{i}.mkv") for i in range(10)]
    entries.insert(3, _entry(100, "b.mkv", "b0.mkv"))
    entries.append(_entry(101, "a.mkv", "a-psnr.mkv", scorer={"name": "libvmaf", "features": ["psnr"]}))
    entries.append(_entry(102, "a.mkv", "enc", encode={"codec": "libx264"}))
    got = [[e.line for e in unit] for unit in units(entries, 4)]
    assert got == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [100], [101], [102]]
    assert [[e.line for e in u] for u in units(entries, 1)] == [[e.line] for e in entries]
    assert [len(u) for u in units(entries, 8)][:2] == [5, 5]


def test_the_default_size_is_what_a_slot_s_memory_holds() -> None:
    mib = 2**20
    assert default_group_size(1, 2, None) == MAX_DEFAULT_GROUP
    assert default_group_size(1, 2, 64 * 1024 * mib) == MAX_DEFAULT_GROUP
    # 2 slots sharing room for 3 distorted each at the 1080p figure
    assert default_group_size(2, 2, 2 * (BASE_MIB + 3 * PER_DISTORTED_MIB) * mib) == 3
    assert default_group_size(4, 2, 100 * mib) == 1  # never below one
    assert default_group_size(1, 2, None, tasks=10) == 1
