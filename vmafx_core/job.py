"""The job model: what to score, how, and with which storage.

Jobs come from CLI flags or from a JSON or TOML job file; both go through the one cattrs converter
here, so a typo or a bad value is reported the same way: one line per field, with its path, and
nothing runs.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NewType, get_args, get_origin, get_type_hints

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from vmafx_core.errors import BadInput
from vmafx_core.pixfmt import RAW_PIX_FMTS
from vmafx_core.published import SUGGESTED_SCORERS
from vmafx_core.types import RawVideo

PositiveInt = NewType("PositiveInt", int)
NonNegativeInt = NewType("NonNegativeInt", int)
PositiveFloat = NewType("PositiveFloat", float)
PixFmt = NewType("PixFmt", str)
Uri = NewType("Uri", str)
Labels = NewType("Labels", Mapping[str, str | int | float])

ScaleFilter = Literal["bicubic", "bilinear", "lanczos", "spline", "neighbor", "area", "none"]


@attrs.frozen
class RawSpec:
    """Geometry of a headerless YUV input."""

    width: PositiveInt
    height: PositiveInt
    pix_fmt: PixFmt
    fps: PositiveFloat

    def to_raw(self) -> RawVideo:
        return RawVideo(width=self.width, height=self.height, pix_fmt=self.pix_fmt, fps=self.fps)


@attrs.frozen
class Source:
    """One input: a container file, or raw YUV when `raw` is given."""

    uri: Uri
    raw: RawSpec | None = None


FrameRate = NewType("FrameRate", str)
Offset = NewType("Offset", str)
Deinterlace = Literal["bwdif", "yadif", "off"]
Sync = Literal["off", "auto"]
InterlaceCheck = Literal["note", "deinterlace", "off"]
VfrPolicy = Literal["resample", "error", "always"]
ColourMode = Literal["convert", "as-is"]
HdrPolicy = Literal["pu21", "as-is", "hdr-models"]
Tonemap = NewType("Tonemap", str)


def _tonemap(value: Any, _: type) -> str:
    """A tone-mapping operator with its parameters: "hable", "mobius:param=0.3:desat=0"."""
    from vmafx_core.colour import parse_tonemap

    if not isinstance(value, str):
        raise ValueError(f"must be an operator like hable or mobius:param=0.3; got {value!r}")
    parse_tonemap(value)
    return value


def _frame_rate(value: Any, _: type) -> str:
    """"reference", "distorted", "index" (pair as decoded, ignore timing), or a rate: 25, 29.97, "30000/1001"."""
    if isinstance(value, str) and value in ("reference", "distorted", "index"):
        return value
    text = str(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else ""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(?:/(\d+))?", text)
    if not match or float(match.group(1)) <= 0 or match.group(2) == "0":
        raise ValueError("must be reference, distorted, index or a frame rate like 25, 29.97 or 30000/1001; "
                         f"got {value!r}")
    return text


def _offset(value: Any, _: type) -> str:
    """Frames (an integer >= 0) or seconds ("1.5s")."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?s|\d+", value.strip()):
        return value.strip()
    raise ValueError(f"must be a frame count >= 0 or seconds like 1.5s; got {value!r}")


@attrs.frozen
class Alignment:
    """How the distorted is matched to the reference before scoring (README: "Alignment")."""

    #: scaler used to bring the distorted to the reference's size; "none" refuses different sizes
    scale_filter: ScaleFilter = "bicubic"
    #: score only the frames both inputs have when their frame counts differ (otherwise an error);
    #: the overlap is checked to be paired frame for frame before a score is reported
    allow_frame_mismatch: bool = False
    #: when the rates differ: score both at "reference"'s, "distorted"'s or this rate (the other
    #: resampled by timestamp, as a player shows it); "index": frame n against frame n as decoded,
    #: whatever the rates say (a stream without timing, such as OBU); None refuses different rates
    fps: FrameRate | None = None
    #: frames (or "1.5s") skipped at the start of each input before frame 0 is paired
    reference_offset: Offset = Offset("0")
    distorted_offset: Offset = Offset("0")
    #: score at most this many paired frames
    frames: PositiveInt | None = None
    #: "auto": find the distorted's offset (within `sync_window` frames either way) before scoring
    sync: Sync = "off"
    sync_window: PositiveInt = PositiveInt(30)
    #: filter for an input whose stream says it is interlaced; "off" scores the fields as they are
    deinterlace: Deinterlace = "bwdif"
    #: an input whose stream states no field order (raw YUV, some containers) is looked at with
    #: ffmpeg's idet on its first `interlace_check_frames` frames: "note" says in the result and
    #: summary when it looks interlaced (idet can be fooled by synthetic patterns, so it is not acted
    #: on), "deinterlace" deinterlaces what idet finds, "off" does not look
    interlace_check: InterlaceCheck = "note"
    interlace_check_frames: PositiveInt = PositiveInt(24)
    #: a variable-rate input (its timestamps are not evenly spaced): "resample" converts it to the
    #: reference's nominal rate by timestamp (held frames repeated, as a player shows them); "error" refuses;
    #: "always" does so for both inputs even when they look constant-rate (a drop Matroska does not show)
    vfr: VfrPolicy = "resample"
    #: "convert": the distorted's code values are converted into the reference's colour description
    #: (range, matrix, primaries, transfer) before scoring; "as-is" scores them as stored (README:
    #: "Colour and HDR")
    colour: ColourMode = "convert"
    #: how a pair of HDR inputs (both PQ or both HLG) is scored: "pu21" (PU21-encoded luminance into
    #: the SDR models), "hdr-models" (HDR-VMAF models, when this ffmpeg has them), "as-is" (code values,
    #: not validated); None refuses an HDR pair
    hdr_policy: HdrPolicy | None = None
    #: HDR against SDR: the tone-mapping operator (ffmpeg's `tonemap`) that maps the HDR side into the
    #: SDR side's description, the score then a proxy; None refuses such a pair
    tonemap: Tonemap | None = None


Size = NewType("Size", str)


def _size(value: Any, _: type) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[1-9]\d*x[1-9]\d*", value):
        raise ValueError(f"must be WIDTHxHEIGHT like 1280x720, got {value!r}")
    return value


def _bitrate(value: Any, _: type) -> str:
    if not isinstance(value, (str, int)) or not re.fullmatch(r"[1-9]\d*(\.\d+)?[kKmM]?", str(value)):
        raise ValueError(f"must be a bitrate like 2500k or 4M, got {value!r}")
    return str(value)


Bitrate = NewType("Bitrate", str)


@attrs.frozen
class Encode:
    """Encode the reference and score the encode as it is produced (instead of a distorted file)."""

    encoder: str  #: an ffmpeg video encoder: libx264, libx265, libsvtav1, libaom-av1, libvpx-vp9, ...
    crf: float | None = None
    bitrate: Bitrate | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    size: Size | None = None  #: scale the reference to WIDTHxHEIGHT before encoding
    #: more encoder arguments, one list item per argv word (never a shell string)
    extra_args: tuple[str, ...] = ()


@attrs.frozen
class Limits:
    """Time bounds: a job fails in bounded time instead of hanging on stalled storage."""

    #: seconds for the whole job, or None for no limit
    timeout: PositiveFloat | None = None
    #: seconds without a newly scored frame before the job fails as stalled
    stall_timeout: PositiveFloat = PositiveFloat(60.0)
    #: seconds a storage backend may take to make the inputs readable
    prepare_timeout: PositiveFloat = PositiveFloat(60.0)
    #: extra attempts at preparing storage after a transient failure
    prepare_retries: NonNegativeInt = NonNegativeInt(2)


#: the scorer a job that names none uses (the builtin one). The one place the core names a
#: scorer: everything else it knows of a scorer comes from its descriptor (`types.Scorer`)
DEFAULT_SCORER = "libvmaf"


@attrs.frozen
class Job:
    """One reference/distorted pair and everything needed to score it."""

    reference: Source
    distorted: Source | None = None
    #: instead of `distorted`: encode the reference and score that
    encode: Encode | None = None
    #: instead of `distorted`: several encodes of the reference, one result per rung
    ladder: tuple[Encode, ...] = ()
    #: scorer name plus its options, e.g. {"name": "libvmaf", "model": "vmaf_v0.6.1"}
    scorer: Mapping[str, Any] = attrs.field(factory=lambda: {"name": DEFAULT_SCORER})
    alignment: Alignment = attrs.field(factory=Alignment)
    limits: Limits = attrs.field(factory=Limits)
    #: when given, inputs must lie under one of these (local folders or remote prefixes)
    allow_roots: tuple[str, ...] = ()
    #: storage backend for every input, or "auto" to choose per input
    storage: str = "auto"
    #: backend settings, e.g. {"rclone_config": "/etc/vmafx/rclone.conf"}
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)
    #: the plugins this job loads (an allow-list of plugin names, as `--plugins` takes); None: all
    #: installed ones, or what the operator's --plugins / $VMAFX_PLUGINS allows
    plugins: tuple[str, ...] | None = None
    #: score the pair in this many segments side by side, pooled exactly as one run; "auto": by its
    #: length and the cores (README: Segments); a pair that cannot be cut exactly is scored whole
    segments: int | str = 1
    id: str | None = None
    #: free-form labels (clip, codec, crf, rung, ...): carried into the result, the batch summary
    #: and the report, where rate-quality curves are grouped by the ones a user names; they never
    #: change a score, so the result cache ignores them
    labels: Labels = attrs.field(factory=lambda: Labels({}))

    @property
    def scorer_name(self) -> str:
        return str(self.scorer.get("name", DEFAULT_SCORER))

    @property
    def scorer_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.scorer.items() if k != "name"}


def _positive_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def _non_negative_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")
    return value


def _positive_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return float(value)


def _segments(value: Any, _: type) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive integer or \"auto\", got {value!r}")
    return value


def _pix_fmt(value: Any, _: type) -> str:
    if value not in RAW_PIX_FMTS:
        raise ValueError(f"unsupported pixel format {value!r}; use one of {', '.join(RAW_PIX_FMTS)}")
    return str(value)


def _uri(value: Any, _: type) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


LABEL_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _labels(value: Any, _: type) -> Mapping[str, str | int | float]:
    """A table of name -> string or number; names as identifiers, so `--curve-by NAME` can name them."""
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a table/object of name = value, got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise ValueError(f"label name {key!r}: use letters, digits, _ . - (starting with a letter or _)")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError(f"label {key!r}: must be a string or a number, got {item!r}")
    return dict(value)


def parse_labels(pairs: Sequence[str], where: str = "--label") -> dict[str, str]:
    """`KEY=VALUE` words (the command line's `--label`) as a labels table; a bad one is BadInput."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not LABEL_KEY.fullmatch(key.strip()):
            raise BadInput(f"{where} {pair!r}: give NAME=VALUE, e.g. codec=x264 (names: letters, digits, _ . -)")
        labels[key.strip()] = value
    return labels


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def _strings(value: Any, _: type) -> tuple[str, ...]:
    """A list of strings; a bare string is refused, not taken apart into its characters (an
    `allow_roots = "/data"` read as "/", "d", ... would admit everything under /)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of strings, e.g. [{json.dumps(value)}], got {json.dumps(value)}"
                         if isinstance(value, str) else f"must be a list of strings, got {value!r}")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise ValueError(f"must be a list of strings; {bad[0]!r} is not one")
    return tuple(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(PositiveInt, _positive_int)
    conv.register_structure_hook(NonNegativeInt, _non_negative_int)
    conv.register_structure_hook(PositiveFloat, _positive_float)
    conv.register_structure_hook_func(lambda t: get_origin(t) is Literal, _literal)
    conv.register_structure_hook(PixFmt, _pix_fmt)
    conv.register_structure_hook(Uri, _uri)
    conv.register_structure_hook(Labels, _labels)
    conv.register_structure_hook_func(lambda t: t == int | str, _segments)  # Job.segments: N or "auto"
    conv.register_structure_hook(Size, _size)
    conv.register_structure_hook(Bitrate, _bitrate)
    conv.register_structure_hook(FrameRate, _frame_rate)
    conv.register_structure_hook(Offset, _offset)
    conv.register_structure_hook(Tonemap, _tonemap)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _strings)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook_func(lambda t: t == Mapping[str, Any], _mapping)
    return conv


def _literal(value: Any, cls: type) -> Any:
    """A Literal, with a message that lists the allowed values."""
    allowed = get_args(cls)
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def _mapping(value: Any, _: type) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a table/object, got {value!r}")
    return dict(value)


#: the one converter for jobs, results and scorer options
converter = _make_converter()


def field_errors(exc: BaseException, path: str) -> list[str]:
    """Flatten a cattrs validation failure into "path: what is wrong" lines."""
    lines: list[str] = []
    if isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            lines.append(f"{path}.{key}: unknown field")
    elif isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            name = note.name if hasattr(note, "name") else note.index
            sub_path = f"{path}.{name}" if isinstance(name, str) else f"{path}[{name}]"
            lines.extend(field_errors(sub, sub_path))
        for sub in without:
            lines.extend(field_errors(sub, path))
    elif isinstance(exc, KeyError):
        lines.append(f"{path}: required field missing")
    elif isinstance(exc, ValueError | TypeError):
        lines.append(f"{path}: {_one_line(exc)}")
    else:
        lines.append(f"{path}: {exc}")
    return lines


def _one_line(exc: BaseException) -> str:
    """An exception's message: attrs' own validators (`in_`, `instance_of`) raise with the attribute,
    the options and the value as further arguments, whose str() would be a raw tuple."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def structure(data: Any, cls: type, path: str) -> tuple[Any, list[str]]:
    """Structure `data` into `cls`; return (object or None, error lines)."""
    try:
        return converter.structure(data, cls), []
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError, ValueError, TypeError,
            KeyError) as exc:
        return None, field_errors(exc, path)


class InvalidJob(BadInput):
    """A job with bad fields; `errors` holds one line per field."""

    def __init__(self, errors: list[str], origin: str) -> None:
        self.errors = errors
        super().__init__(
            f"{origin}: {len(errors)} invalid field{'s' if len(errors) != 1 else ''}",
            detail="\n".join(errors),
        )


def load_job_file(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML job file into plain data (structure it with `parse_job`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"job file {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"job file {path} cannot be read: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"job file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"job file {path} must hold one object/table at the top level")
    return data


STORAGE_OPTIONS_PATH = "job.storage_options"


def storage_option_errors(options: Any, types: Mapping[str, type], path: str = STORAGE_OPTIONS_PATH) -> list[str]:
    """What is wrong with a job's `storage_options`, one line per option with its path.

    `types` maps each installed storage backend to its `options_type` (an attrs class whose field
    names are the option keys it reads). A key no installed backend declares is unknown; a key is
    structured into the class of every backend that declares it, so each checks its own type.
    """
    if not isinstance(options, Mapping):
        return []  # the Job's own structuring reports a storage_options that is not a table
    declared: dict[str, list[type]] = {}
    for options_type in types.values():
        for field in attrs.fields(options_type):
            declared.setdefault(field.name, []).append(options_type)
    errors: list[str] = []
    for key, value in options.items():
        where = f"{path}.{key}"
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            errors.append(f"{where}: unknown storage option (the installed storage backends take: {known})")
            continue
        for options_type in declared[key]:
            _, lines = structure({key: value}, options_type, path)
            for line in lines:  # a class-level check names no field: it is this key's
                line = line if line.startswith(where) else line.replace(f"{path}:", f"{where}:", 1)
                if line not in errors:
                    errors.append(line)
    return errors


def option_value(text: str, options_type: type | None, key: str) -> Any:
    """A `--storage-option KEY=VALUE` value: a string for a string option, else read as JSON when it is.

    So `http_rw_timeout=2.5` gives a number and `rclone_buffer_size=0` stays the string "0".
    """
    hint: Any = str
    if options_type is not None:
        hint = get_type_hints(options_type).get(key, str)
    if hint is str or hint == str | None:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_job(data: Mapping[str, Any], origin: str = "job",
              options_type_for: Callable[[str], type | None] | None = None,
              storage_option_types: Callable[[], Mapping[str, type] | None] | None = None) -> tuple[Job, Any]:
    """Structure a job and its scorer options; raise InvalidJob listing every bad field.

    `options_type_for(scorer_name)` gives the scorer's options class (None when no such scorer).
    `storage_option_types()` gives each installed storage backend's options class (None: do not
    check `storage_options`). Returns the job and the structured scorer options.
    """
    job, errors = structure(data, Job, "job")
    types = storage_option_types() if storage_option_types is not None else None
    if types is not None and isinstance(data, Mapping):
        errors.extend(storage_option_errors(data.get("storage_options", {}), types))
    scorer_data = data.get("scorer", {"name": DEFAULT_SCORER}) if isinstance(data, Mapping) else {}
    options = None
    if isinstance(scorer_data, Mapping):
        name = scorer_data.get("name", DEFAULT_SCORER)
        opts = {k: v for k, v in scorer_data.items() if k != "name"}
        options_type = options_type_for(name) if options_type_for else None
        if options_type_for is not None and options_type is None:
            package = SUGGESTED_SCORERS.get(name)
            errors.append(f"job.scorer.name: no scorer named {name!r} is installed (see `vmafx plugins`)"
                          + (f"; install {package}" if package else ""))
        elif options_type is not None:
            options, opt_errors = structure(opts, options_type, "job.scorer")
            errors.extend(opt_errors)
    if isinstance(data, Mapping) and sum(key in data for key in ("distorted", "encode", "ladder")) != 1:
        errors.append("job.distorted: give exactly one of a distorted source, an encode or a ladder of encodes")
    elif isinstance(data, Mapping) and data.get("ladder") == []:
        errors.append("job.ladder: give at least one encode")
    if errors:
        raise InvalidJob(errors, origin)
    assert job is not None
    return job, options
