"""`vmafx batch`: score many jobs from a JSON Lines file, on this machine or on a Dask cluster.

A batch is long, so it must survive being stopped. Each job's result is one line of the results
file, appended and fsynced as the job ends, by one writer that holds a lock on the file: a crash
loses only the jobs that were running. Running the same command again skips every job that
already has an ok line (resume), re-runs failed ones unless `--skip-failed`, and drops a last line
cut short by a crash. A job is known by its `id`, or by a hash of its line when it has none, so
resume does not depend on line numbers. The writer also keeps each id to one line per run, which
is what makes a task that Dask ran twice (its worker died after finishing) harmless.

The modules, one per part: `jobsfile` (reading JOBS.jsonl), `results` (the one writer of the
results file, and resume), `progress` (the bar), `task` (parsing and running one job, here or on a
Dask worker), `local` (jobs on threads of this process), `cluster` (jobs as Dask tasks) and
`command` (the click command that ties them together).
"""

from vmafx_core.batch.command import BATCH_HELP, batch, run_batch
from vmafx_core.batch.jobsfile import Entry, job_identity, read_jobs
from vmafx_core.batch.local import cores, local_sizing, run_local
from vmafx_core.batch.progress import BatchProgress
from vmafx_core.batch.results import Known, Outcome, RecordFn, ResultWriter, summary_csv
from vmafx_core.batch.task import execute, failure, with_threads

__all__ = ["BATCH_HELP", "BatchProgress", "Entry", "Known", "Outcome", "RecordFn", "ResultWriter", "batch", "cores",
           "execute", "failure", "job_identity", "local_sizing", "read_jobs", "run_batch", "run_local",
           "summary_csv", "with_threads"]
