"""`vmafx jobs`: a batch's jobs file from a listing of the dataset (vmafx_core.listing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vmafx_core.errors import BadInput

JOBS_HELP = """\b
Exit codes:
  0    the jobs were written (files that did not pair are listed on stderr)
  2    bad input: a bad template or base job, an ambiguous name, or with
       --strict any file that did not pair; nothing is written
  3    environment missing (no storage backend that can list the folder)
"""


def pair_jobs(reference: str, distorted: str, *, base: dict[str, Any] | None = None,
              storage_options: dict[str, Any] | None = None) -> Any:
    """The pairing of a listing, every job checked as `vmafx batch` will read it (the API's and the
    command's one implementation)."""
    from vmafx_core.listing import lister_for, pair
    from vmafx_core.plugins import shared

    plugins = shared()
    options = {**(base or {}).get("storage_options", {}), **(storage_options or {})}
    if options:
        base = {**(base or {}), "storage_options": options}
    pairing = pair(reference, distorted, lister_for(options, plugins), base)
    for job in pairing.jobs[:1]:  # they differ only in inputs and labels: one check says it for all
        plugins.parse_job(job, f"job {job['id']}")
    return pairing


@click.command(epilog=JOBS_HELP)
@click.argument("reference_template")
@click.argument("distorted_template")
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the jobs (JSON Lines, `vmafx batch`'s input) here; default: stdout.")
@click.option("--dry-run", is_flag=True, help="Show the pairing as a table and write nothing.")
@click.option("--job", "base_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A job file (JSON or TOML, without reference and distorted) every job starts from: "
                   "scorer, alignment, storage options, labels.")
@click.option("--label", "label_pairs", multiple=True, metavar="NAME=VALUE", help="A label on every job (repeatable).")
@click.option("--strict", is_flag=True, help="Fail (exit 2, nothing written) when any file does not pair.")
@click.option("--storage-option", "storage_option_pairs", multiple=True, metavar="KEY=VALUE",
              help="A storage option for listing and for every job (repeatable), e.g. rclone_config=FILE; the "
                   "storage plugins add their own flags (--rclone-config).")
def jobs(reference_template: str, distorted_template: str, out: Path | None, dry_run: bool, base_file: Path | None,
         label_pairs: tuple[str, ...], strict: bool, storage_option_pairs: tuple[str, ...],
         **plugin_values: Any) -> None:
    """Pair DISTORTED_TEMPLATE's files with REFERENCE_TEMPLATE's into a jobs file for `vmafx batch`.

    Templates are URIs with {fields}: './refs/{clip}.mp4' './enc/{clip}_{height}p_crf{crf}.mp4'
    (local folders or remotes: s3://bucket/..., remote:path/...). The folder before the first field
    is listed once, recursively. A distorted pairs with the reference whose fields agree; every
    field becomes a label. Raw video takes its geometry from {w}x{h} (or {width}, {height}), {fps}
    and {bits} (or {pix_fmt}; {chroma} 420/422/444). Files that do not pair are listed on stderr,
    one line each, before anything is written.
    """
    from vmafx_core.cli import apply_plugin_flags, storage_options_from_flags
    from vmafx_core.clierrors import user_errors
    from vmafx_core.files import write_atomically
    from vmafx_core.job import load_job_file, parse_labels
    from vmafx_core.plugins import shared

    with user_errors():
        base: dict[str, Any] = load_job_file(base_file) if base_file is not None else {}
        given = [k for k in ("reference", "distorted", "encode", "ladder") if k in base]
        if given:
            raise BadInput(f"--job {base_file}: a base job holds settings only; remove its {', '.join(given)}")
        if label_pairs:
            base["labels"] = {**base.get("labels", {}), **parse_labels(label_pairs)}
        flags: dict[str, Any] = {}  # as `vmafx run` reads them: typed, a plugin's flag winning
        storage_options_from_flags(flags, storage_option_pairs, shared())
        apply_plugin_flags(flags, {}, plugin_values, "storage")
        pairing = pair_jobs(reference_template, distorted_template, base=base,
                            storage_options=flags["storage_options"])
        for line in pairing.problems():
            click.echo(f"vmafx: {line}", err=True)
        summary = (f"vmafx: {len(pairing.jobs)} jobs; {len(pairing.orphans)} distorted without a reference, "
                   f"{len(pairing.unused)} references without a distorted, {len(pairing.ambiguous)} ambiguous, "
                   f"{pairing.unmatched} other files")
        click.echo(summary, err=True)
        if pairing.ambiguous:
            raise BadInput(f"{len(pairing.ambiguous)} file name(s) read in more than one way (listed above): put a "
                           "separator no field value holds between the fields; nothing written")
        if strict and pairing.problems():
            raise BadInput(f"--strict: {len(pairing.problems())} file(s) did not pair (listed above); nothing written")
        if not pairing.jobs:
            raise BadInput("no distorted file paired with a reference; check the templates (--dry-run shows the "
                           "pairing)")
        if dry_run:
            _table(pairing.jobs)
            return
        text = "".join(json.dumps(job, ensure_ascii=False) + "\n" for job in pairing.jobs)
        if out is None:
            click.echo(text, nl=False)
        else:
            write_atomically(out, text)
            click.echo(f"vmafx: wrote {len(pairing.jobs)} jobs to {out}", err=True)
    sys.exit(0)


def _table(jobs: list[dict[str, Any]]) -> None:
    """The pairing as aligned columns: reference, distorted, labels."""
    rows = [(job["reference"]["uri"], job["distorted"]["uri"],
             " ".join(f"{k}={v}" for k, v in job["labels"].items())) for job in jobs]
    widths = [max(len(r[i]) for r in [("reference", "distorted", "labels"), *rows]) for i in range(2)]
    for ref, dis, labels in [("reference", "distorted", "labels"), *rows]:
        click.echo(f"{ref:<{widths[0]}}  {dis:<{widths[1]}}  {labels}")
