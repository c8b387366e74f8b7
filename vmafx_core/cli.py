"""The `vmafx` command line.

Machine-readable output goes to stdout (`--json`), people's output and progress to stderr. Every
expected failure is one line `vmafx: error: ...` and an exit code from `ExitCode`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click

from vmafx_core import __version__, interrupts
from vmafx_core.clierrors import user_errors
from vmafx_core.errors import BadInput, ExitCode, VmafxError
from vmafx_core.job import DEFAULT_SCORER, Job, load_job_file
from vmafx_core.pixfmt import RAW_PIX_FMTS
from vmafx_core.plugins import ENV_STORAGE_MODE, Plugins, allow_list, use_only
from vmafx_core.plugins import for_job as plugins_for_job
from vmafx_core.plugins import shared as shared_plugins
from vmafx_core.result import frames_text, write_atomically
from vmafx_core.types import CommandOption

EXIT_CODES_HELP = """\b
Exit codes:
  0    success
  1    the job failed (unreadable or truncated stream, ffmpeg error)
  2    bad input (usage, job file, missing object, frame-count mismatch)
  3    environment missing (ffmpeg/libvmaf, rclone, a plugin, credentials)
  4    corrupt input (the storage reported what it served is not what is stored)
  130  interrupted (Ctrl-C or SIGTERM); everything started was cleaned up
"""


class _Bar:
    """A one-line progress bar on stderr: frames done of total, fps, ETA."""

    def __init__(self) -> None:
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None, fps: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        if total:
            pct = min(done / total, 1.0)
            bar = "#" * int(pct * 30)
            if fps > 0:
                eta = int(max(total - done, 0) / fps)
                eta_text = f"{eta // 60}:{eta % 60:02d}"
            else:
                eta_text = "-:--"
            text = f"\r[{bar:<30}] {done}/{total} frames {fps:6.1f} fps ETA {eta_text}"
        else:
            text = f"\r{done} frames {fps:6.1f} fps"
        click.echo(text, err=True, nl=False)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("\r\033[K", err=True, nl=False)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    named = os.environ.get("VMAFX_LOG", "").upper()  # e.g. VMAFX_LOG=debug, for runs started by other tools
    if named in ("DEBUG", "INFO", "WARNING", "ERROR"):
        level = min(level, getattr(logging, named))
    logging.basicConfig(level=level, format="vmafx: %(levelname)s: %(message)s", stream=sys.stderr)


class _Commands(click.Group):
    """The subcommands; `batch` and `report` (large modules) are imported only when asked for."""

    LAZY = {"batch": ("vmafx_core.batch", "batch"), "report": ("vmafx_core.report.command", "report"),
            "jobs": ("vmafx_core.jobs_cli", "jobs")}
    #: the installed plugins' commands were added (`vmafx_register_commands`)
    plugin_commands = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, attribute = self.LAZY[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        if cmd_name not in self.commands and cmd_name not in self.LAZY:
            self._add_plugin_commands()
        command = super().get_command(ctx, cmd_name)
        if cmd_name in ("run", "jobs") and command is not None:  # `jobs` lists storage: its flags only
            add_plugin_flags(command, "storage" if cmd_name == "jobs" else None)
        return command

    def _add_plugin_commands(self) -> None:
        if not self.plugin_commands:
            self.plugin_commands = True
            self.adding_plugins = True
            try:
                shared_plugins().register_commands(self)
            finally:
                self.adding_plugins = False

    #: plugins' commands are being added: one named like vmafx's own is left out
    adding_plugins = False

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self.adding_plugins and (name in self.commands or name in self.LAZY):
            logging.getLogger(__name__).warning("a plugin's command %r is vmafx's own; left out", name)
            return
        super().add_command(cmd, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="vmafx")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
def main(verbose: int) -> None:
    """Score video quality (VMAF and friends) on pairs that live anywhere rclone reaches."""
    _setup_logging(verbose)
    interrupts.install()  # already done by the `vmafx` executable; here for `cli.main` called directly


def _raw_from_flags(width: int | None, height: int | None, pix_fmt: str | None,
                    fps: float | None) -> dict[str, Any] | None:
    given = {"width": width, "height": height, "pix_fmt": pix_fmt, "fps": fps}
    if all(v is None for v in given.values()):
        return None
    missing = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is None]
    if missing:
        raise BadInput(f"raw YUV input needs {', '.join(missing)} as well")
    return given


#: extensions of headerless video: the only inputs --width/--height/--pix-fmt/--fps apply to
RAW_EXTENSIONS = (".yuv", ".raw")


def _is_raw_uri(uri: str) -> bool:
    from urllib.parse import urlsplit

    return urlsplit(uri).path.lower().endswith(RAW_EXTENSIONS) or uri.lower().endswith(RAW_EXTENSIONS)


def _raw_from_spec(flag: str, spec: str) -> dict[str, Any]:
    """`WxH:PIX_FMT:FPS` (e.g. 1920x1080:yuv420p:25) as a job file's raw table."""
    import re

    match = re.fullmatch(r"(\d+)x(\d+):([a-z0-9]+):(\d+(?:\.\d+)?(?:/\d+)?)", spec.strip())
    if not match:
        raise BadInput(f"{flag} {spec!r}: give WIDTHxHEIGHT:PIX_FMT:FPS, e.g. 1920x1080:yuv420p:25")
    num, _, den = match.group(4).partition("/")
    fps = float(num) / float(den) if den else float(num)
    return {"width": int(match.group(1)), "height": int(match.group(2)), "pix_fmt": match.group(3), "fps": fps}


def _cli_raw(data: dict[str, Any], shared: dict[str, Any] | None, reference_raw: str | None,
             distorted_raw: str | None) -> None:
    """Raw geometry onto the inputs it is for: per-input flags, else the shared flags on .yuv/.raw inputs."""
    roles = [r for r in ("reference", "distorted") if r in data]
    per_input = {"reference": reference_raw, "distorted": distorted_raw}
    for role in roles:
        if per_input[role]:
            data[role]["raw"] = _raw_from_spec(f"--{role}-raw", per_input[role] or "")
    if distorted_raw and "distorted" not in data:
        raise BadInput("--distorted-raw needs a DISTORTED input")
    if shared is None:
        return
    targets = [r for r in roles if not per_input[r] and _is_raw_uri(data[r]["uri"])]
    if not targets:
        raise BadInput("--width/--height/--pix-fmt/--fps apply to .yuv or .raw inputs and none is one; "
                       "give --reference-raw or --distorted-raw WxH:PIX_FMT:FPS for a raw input named otherwise")
    for role in targets:
        data[role]["raw"] = dict(shared)


def _segments_flag(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"--segments {text}: give a number of segments (1 or more) or auto")
    return int(text)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("reference", required=False)
@click.argument("distorted", required=False)
@click.argument("more_distorted", nargs=-1)
@click.option("--cache", "use_cache", is_flag=True, expose_value=False, callback=lambda c, p, v: _cache_flag("on", v),
              help="Reuse the stored result of an unchanged job, keep this one's (README: Result cache).")
@click.option("--cache-dir", expose_value=False, callback=lambda c, p, v: _cache_flag("folder", v),
              type=click.Path(file_okay=False), help="Result cache folder (default: $VMAFX_CACHE_DIR/results).")
@click.option("--job", "job_file", type=click.Path(path_type=Path), help="Read the job from a JSON or TOML file.")
@click.option("--scorer", "scorer_name",
              help="Scorer: libvmaf (default), ffmpeg-metrics, ... (`vmafx plugins` lists them and their options).")
@click.option("--scorer-option", "scorer_option_args", multiple=True, metavar="KEY=VALUE",
              help="A scorer option (repeatable), typed by the scorer: metrics=psnr,ssim, n_threads=4, ...")
@click.option("--plugins", "plugin_names", metavar="A,B",
              help="Load only these plugins (comma-separated names): the flag of $VMAFX_PLUGINS.")
@click.option("--scale-filter", help="Scaler for the distorted (bicubic, bilinear, lanczos, ..., none).")
@click.option("--allow-frame-mismatch", is_flag=True, default=None,
              help="Score only the frames both inputs have when their counts differ.")
@click.option("--frame-rate", "frame_rate",
              help="Inputs at different rates: score both at the reference's, the distorted's or this rate "
                   "(reference, distorted, 25, 30000/1001, ...); the other is resampled by timestamp. "
                   "index: pair frame by frame as decoded, ignoring timing.")
@click.option("--reference-offset", help="Skip this many reference frames (or seconds: 1.5s) before pairing.")
@click.option("--distorted-offset", help="Skip this many distorted frames (or seconds: 1.5s) before pairing.")
@click.option("--frame-count", type=int, help="Score at most this many paired frames.")
@click.option("--sync", type=click.Choice(["off", "auto", "report"]),
              help="auto: find the distorted's offset by comparing frames, then score; report: only print it.")
@click.option("--sync-window", type=int, help="Frames either way the sync search tries (default 30).")
@click.option("--deinterlace", type=click.Choice(["bwdif", "yadif", "off"]),
              help="Filter for an input whose stream is interlaced (default bwdif).")
@click.option("--interlace-check", type=click.Choice(["note", "deinterlace", "off"]),
              help="An input stating no field order: look at its first frames (idet) and say if it looks "
                   "interlaced (note, default), deinterlace what idet finds, or do not look (off).")
@click.option("--vfr", type=click.Choice(["resample", "error", "always"]),
              help="A variable-rate input: resample to the reference's nominal rate by timestamp (default) "
                   "or refuse; always: resample both by timestamp even if they look constant-rate.")
@click.option("--colour", "colour_mode", type=click.Choice(["convert", "as-is"]),
              help="convert (default): the distorted's code values are converted into the reference's colour "
                   "description (range, matrix, primaries) before scoring; as-is: scored as stored, and said so.")
@click.option("--hdr-policy", type=click.Choice(["pu21", "hdr-models", "as-is"]),
              help="Both inputs HDR (PQ or HLG): PU21-encoded luminance into the SDR models, HDR-VMAF models "
                   "(when this ffmpeg has them), or code values as stored (not validated). Required for HDR pairs.")
@click.option("--tonemap", help="HDR against SDR: tone-map the HDR side with this operator (clip, linear, gamma, "
                                "reinhard, hable, mobius; parameters as hable:desat=0); the score is a proxy.")
@click.option("--reference-raw", help="The reference is raw video: WIDTHxHEIGHT:PIX_FMT:FPS (1920x1080:yuv420p:25).")
@click.option("--distorted-raw", help="The distorted is raw video: WIDTHxHEIGHT:PIX_FMT:FPS.")
@click.option("--width", type=int, help="Raw YUV inputs (.yuv/.raw): frame width.")
@click.option("--height", type=int, help="Raw YUV inputs (.yuv/.raw): frame height.")
@click.option("--pix-fmt", type=click.Choice(list(RAW_PIX_FMTS)), help="Raw YUV inputs (.yuv/.raw): pixel format.")
@click.option("--fps", type=float, help="Raw YUV inputs (.yuv/.raw): frame rate.")
@click.option("--segments", "segments", metavar="N|auto",
              help="Score the pair in N segments side by side, pooled exactly as one run (auto: split pairs "
                   "of at least two minutes, one segment per core; 1: whole, the default). A pair that cannot "
                   "be cut exactly runs whole and its result says why (README: Segments).")
@click.option("--storage", help="Storage backend: auto (default), local, rclone-http, rclone-mount, ...")
@click.option("--storage-option", "storage_option_pairs", multiple=True, metavar="KEY=VALUE",
              help="A storage backend option (repeatable), e.g. rclone_buffer_size=8Mi; the job file's "
                   "storage_options table holds the same keys.")
@click.option("--ffmpeg", "ffmpeg_path", help="ffmpeg binary to use (default: $VMAFX_FFMPEG, then the wheel's).")
@click.option("--timeout", type=float, help="Fail the job after this many seconds (default: no limit).")
@click.option("--stall-timeout", type=float,
              help="Fail when no frame is scored for this many seconds (default 60).")
@click.option("--prepare-timeout", type=float, help="Seconds storage may take to get ready (default 60).")
@click.option("--allow-root", "allow_roots", multiple=True,
              help="Only read inputs under this local folder or remote prefix (repeatable; replaces the "
                   "job file's allow_roots).")
@click.option("--encode", "encoder", help="Instead of DISTORTED: encode REFERENCE with this ffmpeg encoder "
              "(libx264, libx265, libsvtav1, libaom-av1, libvpx-vp9, ...) and score the encode as it streams.")
@click.option("--crf", type=float, help="Encode: constant rate factor.")
@click.option("--bitrate", help="Encode: target bitrate, e.g. 2500k.")
@click.option("--preset", help="Encode: encoder preset.")
@click.option("--encode-pix-fmt", help="Encode: output pixel format.")
@click.option("--encode-size", help="Encode: scale to WIDTHxHEIGHT before encoding.")
@click.option("--encode-arg", "encode_args", multiple=True,
              help="Encode: one more encoder argument (repeatable; each is one argv word).")
@click.option("--save-encode", help="Also write the encoded stream here (a local path or a remote URI); for a "
              "ladder, {rung} in the name stands for the rung's index.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the result JSON to this file.")
@click.option("--frames", "frames_file", type=click.Path(path_type=Path),
              help="Write per-frame values to this file (.csv or .json); for a ladder, {rung} in the name "
                   "stands for the rung's index.")
@click.option("--no-progress", is_flag=True, help="No progress bar even on a terminal.")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write an HTML report with per-frame charts (needs the report extra).")
@click.option("--label", "label_pairs", multiple=True, metavar="NAME=VALUE",
              help="A free-form label kept in the result and the report (repeatable): codec=x264, crf=23; "
                   "the report's --curve-by groups rate-quality curves by them.")
def run(reference: str | None, distorted: str | None, job_file: Path | None, scale_filter: str | None,
        allow_frame_mismatch: bool | None, width: int | None, height: int | None, pix_fmt: str | None,
        fps: float | None, storage: str | None,
        storage_option_pairs: tuple[str, ...], ffmpeg_path: str | None,
        timeout: float | None, stall_timeout: float | None, prepare_timeout: float | None,
        allow_roots: tuple[str, ...], encoder: str | None, crf: float | None, bitrate: str | None,
        preset: str | None, encode_pix_fmt: str | None, encode_size: str | None, encode_args: tuple[str, ...],
        save_encode: str | None, as_json: bool, output: Path | None, frames_file: Path | None,
        no_progress: bool, report_file: Path | None, frame_rate: str | None = None,
        reference_offset: str | None = None, distorted_offset: str | None = None, frame_count: int | None = None,
        sync: str | None = None, sync_window: int | None = None, deinterlace: str | None = None,
        vfr: str | None = None, interlace_check: str | None = None, reference_raw: str | None = None,
        distorted_raw: str | None = None, scorer_name: str | None = None,
        scorer_option_args: tuple[str, ...] = (), plugin_names: str | None = None,
        more_distorted: tuple[str, ...] = (), colour_mode: str | None = None, hdr_policy: str | None = None,
        tonemap: str | None = None, label_pairs: tuple[str, ...] = (),
        segments: str | None = None, **plugin_values: Any) -> None:
    """Score DISTORTED against REFERENCE (paths, file://, s3://..., or rclone remote:path).

    Several DISTORTED are scored in one pass over the reference, read and decoded once (README:
    Several distorted, one reference read).
    """
    with user_errors():
        plugins = shared_plugins() if plugin_names is None else use_only(allow_list(plugin_names))
        data: dict[str, Any]
        if job_file is not None:
            if reference or distorted:
                raise BadInput("give either REFERENCE DISTORTED or --job FILE, not both")
            if reference_raw or distorted_raw:
                raise BadInput("--reference-raw/--distorted-raw go with REFERENCE DISTORTED; a job file has "
                               "[reference] raw = { ... }")
            data = load_job_file(job_file)
            origin = str(job_file)
        else:
            if not reference or (not distorted and not encoder):
                raise BadInput("give REFERENCE and DISTORTED (or --encode ENCODER), or --job FILE "
                               "(see vmafx run --help)")
            if distorted and encoder:
                raise BadInput("give DISTORTED or --encode, not both")
            raw = _raw_from_flags(width, height, pix_fmt, fps)
            data = {"reference": {"uri": reference}}
            if distorted:
                data["distorted"] = {"uri": distorted}
            _cli_raw(data, raw, reference_raw, distorted_raw)
            if more_distorted:  # several: each with the raw geometry given for the distorted
                data["distorted"] = [{**data["distorted"], "uri": uri} for uri in (distorted, *more_distorted)]
            origin = "command line"
        if plugin_names is None:  # a job file's `plugins = [...]`; the flag wins over it
            plugins = plugins_for_job(data)
        encode_flags = {"crf": crf, "bitrate": bitrate, "preset": preset, "pix_fmt": encode_pix_fmt,
                        "size": encode_size, "extra_args": list(encode_args) or None}
        if encoder:
            data["encode"] = {"encoder": encoder, **{k: v for k, v in encode_flags.items() if v is not None}}
        elif any(v is not None for v in encode_flags.values()):
            raise BadInput("--crf, --bitrate, --preset, --encode-* only apply with --encode ENCODER")
        scorer = data.setdefault("scorer", {"name": DEFAULT_SCORER}) if isinstance(data.get("scorer", {}), dict) else {}
        if scorer_name is not None:
            scorer["name"] = scorer_name
        apply_plugin_flags(data, scorer, plugin_values, "scorer")
        from vmafx_core.plugins import scorer_options_from_flags
        scorer_options_from_flags(plugins, scorer, scorer_option_args)
        alignment = data.setdefault("alignment", {}) if isinstance(data.get("alignment", {}), dict) else {}
        if scale_filter is not None:
            alignment["scale_filter"] = scale_filter
        if allow_frame_mismatch is not None:
            alignment["allow_frame_mismatch"] = allow_frame_mismatch
        from vmafx_core.alignment import cli_alignment
        sync_only = cli_alignment(alignment, frame_rate, reference_offset, distorted_offset, frame_count, sync,
                                  sync_window, deinterlace, vfr, interlace_check)
        for colour_key, colour_value in (("colour", colour_mode), ("hdr_policy", hdr_policy),
                                         ("tonemap", tonemap)):
            if colour_value is not None:
                alignment[colour_key] = colour_value
        if storage is not None:
            data["storage"] = storage
        if segments is not None:
            data["segments"] = segments if segments == "auto" else _segments_flag(segments)
        limits = data.setdefault("limits", {}) if isinstance(data.get("limits", {}), dict) else {}
        for key, limit in (("timeout", timeout), ("stall_timeout", stall_timeout),
                           ("prepare_timeout", prepare_timeout)):
            if limit is not None:
                limits[key] = limit
        if label_pairs:  # added to (and winning over) a job file's labels
            from vmafx_core.job import parse_labels
            labels = data.setdefault("labels", {}) if isinstance(data.get("labels", {}), dict) else {}
            labels.update(parse_labels(label_pairs))
        if allow_roots:  # the operator's flags win over whatever a job file says
            data["allow_roots"] = list(allow_roots)
        if storage_option_pairs:
            storage_options_from_flags(data, storage_option_pairs, plugins)
        apply_plugin_flags(data, scorer, plugin_values, "storage")  # a flag wins over --storage-option

        if isinstance(data.get("distorted"), list):
            unsupported = [flag for flag, given in (("--frames", frames_file), ("--sync report", sync_only),
                                                    ("--save-encode", save_encode)) if given]
            code = _run_many(data, origin, plugins, ffmpeg_path, as_json, output, no_progress, unsupported,
                             report_file)
            if code:
                sys.exit(code)
            return
        job, options = plugins.parse_job(data, origin)
        if save_encode and job.encode is None and not job.ladder:
            raise BadInput("--save-encode only applies to an encode job")
        _run_and_report(job, options, plugins, ffmpeg_path, as_json, output, frames_file, no_progress,
                        save_encode, report_file, sync_only)


#: the click parameter name of each plugin flag on `vmafx run` (and `vmafx jobs`) -> its descriptor
_plugin_flags: dict[str, CommandOption] = {}


def add_plugin_flags(command: click.Command, target: str | None = None) -> None:
    """Add the installed plugins' flags (`vmafx_command_options`; of `target`, "scorer" or
    "storage", or both) to a command, once; a flag the core has already, or a plugin whose hook
    failed, is left out with a warning."""
    if getattr(command, "_plugin_flags_added", False):
        return
    command._plugin_flags_added = True  # type: ignore[attr-defined]
    taken = {opt for param in command.params for opt in getattr(param, "opts", ())}
    try:
        offered = shared_plugins().command_options()
    except VmafxError as exc:  # two plugins offer one flag differently: `vmafx plugins` says which
        logging.getLogger(__name__).warning("plugin flags left out of vmafx run: %s", exc)
        return
    for flag, provided in offered.items():
        option: CommandOption = provided.item
        if target not in (None, option.target):
            continue
        if flag in taken:
            logging.getLogger(__name__).warning("plugin %s: its flag %s is vmafx's own; left out", provided.plugin,
                                                flag)
            continue
        name = "plugin_" + flag.lstrip("-").replace("-", "_")
        kind: Any = click.Path() if option.value_type == "path" else option.value_type
        owner = f"the {option.scorer} scorer" if option.target == "scorer" else f"storage option {option.key}"
        command.params.append(click.Option([flag, name], multiple=option.multiple, type=kind, metavar=option.metavar,
                                           help=f"{option.help} [{owner}]".strip()))
        _plugin_flags[name] = option


def apply_plugin_flags(data: dict[str, Any], scorer: dict[str, Any], values: dict[str, Any],
                        target: str | None = None) -> None:
    """Each plugin flag given (of `target`, "scorer" or "storage"; None: both), written where its
    descriptor says: the job's scorer table (only when the job's scorer is the flag's) or its
    storage options, as a job file would hold it."""
    for name, value in values.items():
        option = _plugin_flags.get(name)
        if option is None or value is None or (option.multiple and not value) or target not in (None, option.target):
            continue
        value = list(value) if option.multiple else value
        if option.target == "storage":
            if not isinstance(data.setdefault("storage_options", {}), dict):
                continue  # the job file's own storage_options is reported as not a table
            data["storage_options"][option.key] = value
            continue
        chosen = str(scorer.get("name", DEFAULT_SCORER))
        if chosen != option.scorer:
            raise BadInput(f"{option.flag} is an option of the {option.scorer} scorer and this job's scorer is "
                           f"{chosen!r}: give its options with --scorer-option KEY=VALUE (`vmafx plugins` lists them)")
        scorer[option.key] = value


def storage_options_from_flags(data: dict[str, Any], pairs: tuple[str, ...], plugins: Plugins) -> None:
    """`--storage-option KEY=VALUE` into the job's storage_options, each value read as its option's type."""
    from vmafx_core.job import option_value

    if not isinstance(data.setdefault("storage_options", {}), dict):
        return  # the job file's own storage_options is reported as not a table
    types = plugins.storage_option_types() or {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--storage-option {pair!r}: give KEY=VALUE, e.g. rclone_buffer_size=8Mi")
        key = key.strip()
        owner = next((t for t in types.values() if key in attrs.fields_dict(t)), None)
        data["storage_options"][key] = option_value(text, owner, key)


_run_cache: dict[str, Any] = {"on": False, "folder": None}


def _cache_flag(name: str, value: Any) -> None:
    """`vmafx run --cache [--cache-dir D]`: the result cache this run's jobs use (off by default)."""
    from vmafx_core.cache import ResultCache, default_folder, set_process_default

    _run_cache[name] = value
    set_process_default(ResultCache(_run_cache["folder"] or default_folder()) if _run_cache["on"] else None)


def _run_and_report(job: Job, options: Any, plugins: Plugins, ffmpeg_path: str | None, as_json: bool,
                    output: Path | None, frames_file: Path | None, no_progress: bool,
                    save_encode: str | None = None, report_file: Path | None = None,
                    sync_only: bool = False) -> None:
    from vmafx_core.executor import run_job

    if report_file is not None:  # before the job runs, not after
        from vmafx_core.report.command import require_extra
        require_extra()
    if frames_file is not None and frames_file.suffix.lower() not in (".csv", ".json"):
        raise BadInput(f"--frames {frames_file}: use a .csv or .json file name")
    if sync_only and (output is not None or frames_file is not None or job.ladder):
        raise BadInput("--sync report only prints the offset: it takes no -o, --frames or ladder")
    if job.ladder:
        _run_ladder(job, options, plugins, ffmpeg_path, as_json, output, frames_file, no_progress, save_encode,
                    report_file)
        return
    bar = _Bar() if sys.stderr.isatty() and not no_progress else None
    try:
        result, frames = run_job(job, options, plugins, ffmpeg=ffmpeg_path, progress=bar, save_encode=save_encode)
    finally:
        if bar is not None:
            bar.close()
    interrupts.check()  # a score that finished after Ctrl-C is not reported
    data = result.to_dict()
    if sync_only:
        _report_sync(data, as_json)
        return
    text = json.dumps(data, indent=2) + "\n"
    if output is not None:
        write_atomically(output, text)
    if frames_file is not None:
        write_atomically(frames_file, frames_text(frames, frames_file.suffix.lower().lstrip(".")))
    if report_file is not None:
        from vmafx_core.report.command import for_run
        for_run(data, frames, report_file)
    if as_json:
        click.echo(text, nl=False)
    else:
        _summary(data, plugins.scorer(job.scorer_name).summary_metric)


def _run_ladder(job: Job, options: Any, plugins: Plugins, ffmpeg_path: str | None, as_json: bool,
                output: Path | None, frames_file: Path | None, no_progress: bool, save_encode: str | None,
                report_file: Path | None = None) -> None:
    """Every rung encoded and scored, the reference read once for all (vmafx_core.ladder); one result
    per rung, a failed rung's error in its place; the exit code is the first failed rung's."""
    from vmafx_core.executor import ladder_result
    from vmafx_core.ladder import ladder_rows, run_ladder

    if frames_file is not None and "{rung}" not in frames_file.name:
        raise BadInput(f"--frames {frames_file}: a ladder writes one file per rung; put {{rung}} in the name for "
                       "the rung's index, e.g. frames-{rung}.csv")
    bar = _Bar() if sys.stderr.isatty() and not no_progress else None
    try:
        outcomes = run_ladder(job, options, plugins, ffmpeg=ffmpeg_path, progress=bar, save_encode=save_encode)
    finally:
        if bar is not None:
            bar.close()
    interrupts.check()  # scores that finished after Ctrl-C are not reported
    rungs, failed = ladder_rows(job, outcomes)
    if frames_file is not None:
        for index, outcome in enumerate(outcomes):
            if not isinstance(outcome, VmafxError):
                path = frames_file.with_name(frames_file.name.replace("{rung}", str(index)))
                write_atomically(path, frames_text(outcome[1], frames_file.suffix.lower().lstrip(".")))
    for row in rungs:
        if row["schema"] == "vmafx.error":
            click.echo(f"vmafx: error: rung {row['job_id']} ({row['distorted']}): {row['error']}", err=True)
            continue
        if not as_json:
            e, metrics = row["encode"], row["metrics"]
            rate = f"{e['bitrate_bps'] / 1000:8.0f} kb/s" if e.get("bitrate_bps") else "-"
            scores = [f"{m['metric'] if m['metric'] != 'vmaf' else 'VMAF'} {metrics[m['metric']]['mean']:.4f}"
                      for m in row["provenance"].get("models", []) if m.get("metric") in metrics] or \
                [f"VMAF {metrics['vmaf']['mean']:.4f}"] * ("vmaf" in metrics)
            click.echo(f"{row['distorted']['uri']:<48} {rate}  {'  '.join(scores)}", err=True)
    interrupts.check()
    data = ladder_result(job, rungs)
    text = json.dumps(data, indent=2) + "\n"
    if output is not None:
        write_atomically(output, text)
    if report_file is not None:
        from vmafx_core.report.command import for_run
        for_run({**data, "rungs": [r for r in rungs if r["schema"] == "vmafx.result"]}, None, report_file)
    if as_json:
        click.echo(text, nl=False)
    if failed is not None:
        sys.exit(int(failed.exit_code))


def _run_many(data: dict[str, Any], origin: str, plugins: Plugins, ffmpeg: str | None, as_json: bool,
             output: Any, no_progress: bool, unsupported: Sequence[str], report_file: Any = None) -> int:
    """`vmafx run REF DIS1 DIS2 ...` (or `distorted = [...]`): one result per distorted; the exit code.

    stdout gets a JSON list with `--json` (one `vmafx.result` per distorted, in order; a failed one
    is `{"schema": "vmafx.error", "distorted": URI, "error": ..., "exit_code": N}`), else one line
    per distorted. The exit code is 0 when all were scored, else the first failure's. `report_file`:
    also the HTML report of every pair scored, with its per-frame values.
    """
    from vmafx_core.group import run_group

    if unsupported:
        raise BadInput(f"{', '.join(unsupported)} take one distorted: score several without them, or one by one")
    if report_file is not None:  # before anything runs
        from vmafx_core.report.command import require_extra
        require_extra()
    items = data["distorted"]
    if not items:
        raise BadInput(f"{origin}: distorted is an empty list")
    jobs: list[Job] = []
    options = None
    for i, item in enumerate(items):
        one = {**data, "distorted": {"uri": item} if isinstance(item, str) else item}
        if "id" in data:
            one["id"] = f"{data['id']}/{i}"
        job, options = plugins.parse_job(one, f"{origin} (distorted {i})")
        jobs.append(job)
    outcomes = run_group(jobs, options, plugins, ffmpeg=ffmpeg)
    interrupts.check()
    rows: list[dict[str, Any]] = []
    frames: list[Sequence[dict[str, float]] | None] = []
    code = 0
    for job, outcome in zip(jobs, outcomes, strict=True):
        assert job.distorted is not None
        if isinstance(outcome, VmafxError):
            rows.append({"schema": "vmafx.error", "job_id": job.id, "distorted": job.distorted.uri,
                         "error": outcome.message, "exit_code": int(outcome.exit_code)})
            where = "" if job.distorted.uri in outcome.message else f"distorted {job.distorted.uri}: "
            click.echo(f"vmafx: error: {where}{outcome.message}", err=True)
            code = code or int(outcome.exit_code)
            frames.append(None)
            continue
        rows.append(outcome[0].to_dict())
        frames.append(outcome[1])
        if not as_json:
            vmaf = rows[-1]["metrics"].get("vmaf")
            click.echo(f"{job.distorted.uri}  VMAF {vmaf['mean']:.6f}" if vmaf else job.distorted.uri)
    text = json.dumps(rows, indent=2) + "\n"
    if output is not None:
        write_atomically(output, text)
    if report_file is not None:
        from vmafx_core.report.command import for_many
        for_many(rows, frames, report_file)
    if as_json:
        click.echo(text, nl=False)
    return code


def _report_sync(result: dict[str, Any], as_json: bool) -> None:
    """Print what `--sync report` found: the distorted's offset and how clearly it won."""
    from vmafx_core.alignment import margin_text

    found = (result["provenance"].get("alignment") or {}).get("sync") or {}
    if as_json:
        click.echo(json.dumps({"sync": found, "alignment": result["provenance"].get("alignment")}, indent=2))
        return
    offset = int(found.get("offset", 0))
    hint = (f"--distorted-offset {offset}" if offset > 0 else f"--reference-offset {-offset}" if offset < 0
            else "no offset needed")
    click.echo(f"distorted offset {offset:+d} frames ({margin_text(found.get('margin'))}, "
               f"searched +-{found.get('window')} frames): {hint}")


def _summary(data: dict[str, Any], shown: Callable[[str], bool] | None) -> None:
    """The result for people, on stderr; the headline score on stdout. `shown` is the scorer's
    `summary_metric`: which of its metrics the summary lists (None: all)."""
    ref, dis = data["reference"], data["distorted"]
    click.echo(f"reference  {ref['uri']}  [{ref['storage']}]", err=True)
    click.echo(f"distorted  {dis['uri']}  [{dis['storage']}]", err=True)
    model = data["provenance"].get("model", "-")
    click.echo(f"frames     {data['frames_scored']}   model {', '.join(model) if isinstance(model, list) else model}",
               err=True)
    model_metrics = [m.get("metric") for m in data["provenance"].get("models", [])]
    summary = (data["provenance"].get("alignment") or {}).get("summary") or []
    decided = [line for line in summary if not line.startswith("colour")]
    if decided:  # anything but frame n against frame n as decoded
        click.echo(f"alignment  {'; '.join(decided)}", err=True)
    colour = [line.removeprefix("colour: ") for line in summary if line.startswith("colour")]
    if colour:  # anything but two inputs described alike as SDR
        click.echo(f"colour     {'; '.join(colour)}", err=True)
    for name, p in data["metrics"].items():
        if name in model_metrics or shown is None or shown(name):
            click.echo(f"{name:<14} mean {p['mean']:9.4f}  hmean {p['harmonic_mean']:9.4f}  "
                       f"min {p['min']:9.4f}  p5 {p['p5']:9.4f}", err=True)
    if data.get("encode"):
        e = data["encode"]
        rate = f"{e['bitrate_bps'] / 1000:.0f} kb/s" if e.get("bitrate_bps") else "-"
        click.echo(f"encode     {e['encoder']}  {e['encoded_bytes']} bytes  {rate}  "
                   f"{e['encode_fps'] or 0:.1f} fps", err=True)
    t = data["timings"]
    click.echo(f"time       prepare {t['prepare_s']:.2f}s  score {t['score_s']:.2f}s  {t['fps']:.1f} fps", err=True)
    vmaf = data["metrics"].get("vmaf")
    if vmaf is not None:
        click.echo(f"VMAF {vmaf['mean']:.6f}")
    else:  # several models: one line each, by metric name
        for name in model_metrics:
            if name in data["metrics"]:
                click.echo(f"{name} {data['metrics'][name]['mean']:.6f}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def plugins(as_json: bool) -> None:
    """List plugins, their backends and scorers (with their options), and plugins that failed to load."""
    from vmafx_core.plugins import describe_options

    with user_errors():
        pl = Plugins(fresh=True)  # diagnostics: never a kept list
        error = None
        try:
            backends = pl.storage_backends()
            scorers = pl.scorers()
        except VmafxError as exc:
            backends, scorers, error = {}, {}, exc
        rows: list[dict[str, Any]] = []
        for info in pl.infos:
            avail = {}
            for name, p in backends.items():
                if p.plugin == info.name:
                    a = p.item.availability_for(None)
                    avail[name] = {"usable": a.usable, "reason": a.reason}
            rows.append({
                "name": info.name, "package": info.package, "version": info.version, "builtin": info.builtin,
                "loaded": info.error is None, "error": info.error,
                "storage_backends": [{"name": n, "description": p.item.description, **avail[n],
                                      "auto_priority": p.item.auto_priority, "schemes": list(p.item.schemes),
                                      "options": describe_options(p.item.options_type)
                                      if p.item.options_type is not None else []}
                                     for n, p in backends.items() if p.plugin == info.name],
                "scorers": [{"name": n, "description": p.item.description, "metrics": list(p.item.metrics),
                             "options": describe_options(p.item.options_type)}
                            for n, p in scorers.items() if p.plugin == info.name],
            })
        if as_json:
            click.echo(json.dumps({"plugins": rows, "error": str(error) if error else None}, indent=2))
        else:
            for row in rows:
                state = "ok" if row["loaded"] else f"FAILED: {row['error']}"
                click.echo(f"{row['name']:<14} {row['package']} {row['version']}  {state}")
                for b in row["storage_backends"]:
                    usable = "usable" if b["usable"] else f"unusable: {b['reason']}"
                    click.echo(f"    storage {b['name']:<13} {usable}")
                    for o in b["options"]:
                        click.echo(f"      option {o['name']}: {o['type']} = {json.dumps(o['default'])}")
                for s in row["scorers"]:
                    click.echo(f"    scorer  {s['name']:<13} {', '.join(s['metrics'])}")
                    for o in s["options"]:
                        click.echo(f"      option {o['name']}: {o['type']} = {json.dumps(o['default'])}")
        if error is not None:
            raise error


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.option("--ffmpeg", "ffmpeg_path", help="ffmpeg binary to check.")
def doctor(as_json: bool, ffmpeg_path: str | None) -> None:
    """Check that ffmpeg with libvmaf and every plugin are usable here, and say why not.

    Exits 3 when something every job needs is missing (ffmpeg, libvmaf, a usable storage backend)
    or a plugin failed to load; a backend that is merely unusable here (say rclone-mount without
    /dev/fuse) is reported with its reason but does not fail the check.
    """
    from vmafx_core.ffmpeg import ffmpeg_info, find_ffmpeg

    with user_errors():
        checks: list[dict[str, Any]] = []

        def check(name: str, ok: bool, detail: str, required: bool = True) -> None:
            checks.append({"check": name, "ok": ok, "required": required, "detail": detail})

        try:
            path = find_ffmpeg(ffmpeg_path)
            info = ffmpeg_info(path)
            check("ffmpeg", True, f"{info.version} at {path}")
            check("libvmaf", info.has_libvmaf, "libvmaf filter present" if info.has_libvmaf else
                  "this ffmpeg has no libvmaf filter: use the imageio-ffmpeg wheel or set VMAFX_FFMPEG")
        except VmafxError as exc:
            check("ffmpeg", False, str(exc))
        pl = Plugins(fresh=True)  # diagnostics: never a kept list
        for failed in pl.failures():
            check(f"plugin {failed.name}", False, f"package {failed.package} failed to load: {failed.error}")
        cleaned = pl.clean_stale()
        check("leftovers", True, f"removed {len(cleaned)} left by vmafx runs that died: {', '.join(cleaned)}"
              if cleaned else "nothing left by vmafx runs that died", required=False)
        try:
            mode = pl.machine_storage_mode()
            check("storage mode", True, f"jobs that say auto use {mode} ({ENV_STORAGE_MODE})" if mode != "auto"
                  else f"auto ({ENV_STORAGE_MODE} not set)", required=False)
        except VmafxError as exc:
            check("storage mode", False, exc.message)
        usable_storage = 0
        try:
            for name, p in pl.storage_backends().items():
                a = p.item.availability_for(None)
                usable_storage += a.usable
                check(f"storage {name}", a.usable, f"{p.package}: " + ("usable" if a.usable else a.reason),
                      required=False)
            for name, p in pl.scorers().items():
                a = p.item.availability()
                check(f"scorer {name}", a.usable, f"{p.package}: " + ("usable" if a.usable else a.reason),
                      required=False)
        except VmafxError as exc:
            check("plugins", False, str(exc))
        if not usable_storage:
            check("storage", False, "no usable storage backend: pip install vmafx-local vmafx-rclone-http")
        ok = all(c["ok"] for c in checks if c["required"])
        if as_json:
            click.echo(json.dumps({"ok": ok, "checks": checks}, indent=2))
        else:
            for c in checks:
                mark = "ok" if c["ok"] else "XX" if c["required"] else "--"
                click.echo(f"[{mark}] {c['check']:<22} {c['detail']}")
        if not ok:
            sys.exit(int(ExitCode.ENVIRONMENT))


@main.command()
@click.argument("folder", type=click.Path(path_type=Path), default=None, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--ffmpeg", "ffmpeg_path", help="ffmpeg binary to use.")
def demo(folder: Path | None, as_json: bool, ffmpeg_path: str | None) -> None:
    """Make the built-in sample (a reference and an x264 encode of it) and score it.

    The sample is synthetic (ffmpeg's testsrc2 pattern), made here, and kept in FOLDER
    (default: ~/.cache/vmafx/sample) so later runs reuse it. No network or cloud account needed.
    """
    from vmafx_core.sample import make_sample

    with user_errors():
        folder = folder or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vmafx" / "sample"
        ref, dis = make_sample(folder, ffmpeg_path)
        click.echo(f"sample: {ref} and {dis}", err=True)
        plugins_ = shared_plugins()
        job, options = plugins_.parse_job({"reference": {"uri": str(ref)}, "distorted": {"uri": str(dis)}}, "demo")
        _run_and_report(job, options, plugins_, ffmpeg_path, as_json, None, None, False)

