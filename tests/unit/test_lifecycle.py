"""The paths that score several jobs check them as one job is checked, in process."""

from __future__ import annotations

from click.testing import CliRunner

from testkit.media import Media
from vmafx_core import cli
from vmafx_core.batch.grouping import units
from vmafx_core.batch.jobsfile import Entry
from vmafx_core.batch.task import with_threads
from vmafx_core.plugins import Plugins


def test_several_distorted_check_their_storage_options(media: Media) -> None:
    """`vmafx run R D1 D2 --storage-option typo=1`: refused like the one-pair run, before anything runs."""
    done = CliRunner().invoke(cli.main, ["run", str(media.ref), str(media.dis), str(media.dis), "--json",
                                         "--storage-option", "typo=1"])
    assert done.exit_code == 2, done.output
    assert "job.storage_options.typo" in done.output and done.stdout == ""


def _entry(line: int, scorer: str) -> Entry:
    return Entry(line=line, id=f"j{line}", data={"id": f"j{line}", "reference": {"uri": "a.mkv"},
                                                "distorted": {"uri": f"d{line}.mkv"}, "scorer": {"name": scorer}})


def test_jobs_of_a_scorer_without_a_shared_pass_are_never_grouped() -> None:
    entries = [_entry(i, "libvmaf") for i in range(3)] + [_entry(10 + i, "other") for i in range(3)]
    got = [[e.line for e in unit] for unit in units(entries, 4, lambda name: name == "libvmaf")]
    assert got == [[0, 1, 2], [10], [11], [12]]


def test_threads_per_job_goes_to_the_scorers_declared_thread_option() -> None:
    plugins = Plugins()
    data = {"reference": {"uri": "a.mkv"}, "distorted": {"uri": "b.mkv"}}
    assert with_threads(data, 2, plugins)["scorer"] == {"name": "libvmaf", "n_threads": 2}
    kept = {**data, "scorer": {"name": "libvmaf", "n_threads": 3}}
    assert with_threads(kept, 2, plugins) == kept
    unknown = {**data, "scorer": {"name": "no-such-scorer"}}
    assert with_threads(unknown, 2, plugins) == unknown  # no descriptor, no thread option: as given
