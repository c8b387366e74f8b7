"""libvmaf's models: which ones an ffmpeg binary has, what each is for, and how a job names one.

The built-in models are not a list in this code: their names are read out of the ffmpeg binary
(libvmaf keeps each as a C string next to its JSON), and each is tried once in a one-frame libvmaf
run, so a name the build lists but cannot load (`vmaf_b_v0.6.3` in libvmaf 3.x, whose bootstrap
collections ffmpeg's filter does not load) is known as such. The answer is kept per binary in the
`vmafx_core.binfacts` cache, like the ffmpeg version. What a model is for is derived from its name
and libvmaf's documentation (resource/doc/models.md, models_v0.md):

- v0 (`vmaf_v0.6.1`...): 1080p at 3H; `_4k_` 2160p at 1.5H; `neg`: "no enhancement gain", which
  does not reward sharpening or contrast enhancement; `float_`: the floating-point feature
  extractors; `_b_`: bootstrap, a collection of models for a confidence interval. `vmaf_v0.6.1`
  with `enable_transform=true` is the phone model. Scores 0-100.
- v1 (`vmaf_v1.0.16_<distance>[_2160]`, June 2026): `3d0h` 1080p at 3H, `5d0h` the phone
  condition (5H), `1d5h_2160` 4K at 1.5H, `3d0h_2160` 4K at 3H (0-110); `_hfr_` variants for
  ~50/60 fps. The documentation asks for 10-bit precision even for 8-bit video: vmafx converts
  8-bit inputs to 10 bits for them and says so in the provenance.

Model syntax (the `--model` flag, a `model` string in a job file):
`NAME[:key=value...]`, NAME a built-in model or a model file path; keys `enable_transform`,
`disable_clip`, `enable_conf_interval` (true/false), `metric` (the result's metric name), and
`cambi.enc_width`, `cambi.enc_height`, `cambi.enc_bitdepth` (the encode's size and bit depth, for
the v1 models' CAMBI). A job file may also give a table `{ name = "...", enable_transform = true }`
or a list of either: several models are scored in one pass.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vmafx_core import binfacts, tempdirs
from vmafx_core.errors import BadInput, EnvironmentMissing
from vmafx_core.process import child_environment

#: a model's name as libvmaf's built-in table stores it: a NUL-ended C string
_NAME_IN_BINARY = re.compile(rb"vmaf_(?:[a-z0-9]+_)*?v\d+\.\d+\.\d+[a-z0-9_]*(?=\x00)")
_V1 = re.compile(r"^vmaf_v1\.\d+\.\d+(_hfr)?_(\d)d(\d)h(_2160)?$")
_UNSAFE = set(":|'\\,;[]=\n")
_BOOL_KEYS = ("enable_transform", "disable_clip", "enable_conf_interval")
_INT_KEYS = ("cambi.enc_width", "cambi.enc_height", "cambi.enc_bitdepth")
_METRIC_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")


def is_model_file(model: str) -> bool:
    return "/" in model or model.endswith((".json", ".pkl"))


@attrs.frozen
class ModelChoice:
    """One model of a job: a built-in name or a file, and its parameters."""

    name: str
    enable_transform: bool = False
    disable_clip: bool = False
    enable_conf_interval: bool = False
    cambi: tuple[tuple[str, int], ...] = ()  #: ("enc_width", 1280), ...
    metric: str | None = None

    @property
    def is_file(self) -> bool:
        return is_model_file(self.name)

    @property
    def is_v1(self) -> bool:
        return bool(_V1.match(self.name)) or (self.is_file and "v1." in os.path.basename(self.name))

    def spec(self) -> str:
        """The model in the `NAME:key=value` syntax (what the provenance records)."""
        parts = [self.name]
        parts += [f"{k}=true" for k in _BOOL_KEYS if getattr(self, k)]
        parts += [f"cambi.{k}={v}" for k, v in self.cambi]
        if self.metric:
            parts.append(f"metric={self.metric}")
        return ":".join(parts)

    def default_metric(self) -> str:
        stem = os.path.splitext(os.path.basename(self.name))[0] if self.is_file else self.name
        base = stem if stem.startswith("vmaf") else f"vmaf_{stem}"
        return base + ("_phone" if self.enable_transform else "") + ("_noclip" if self.disable_clip else "")

    def filter_value(self, metric: str | None) -> str:
        """This model as one entry of the libvmaf filter's `model` option (its `:` escaped twice)."""
        parts = [f"path={self.name}" if self.is_file else f"version={self.name}"]
        parts += [f"{k}=true" for k in _BOOL_KEYS if getattr(self, k)]
        parts += [f"cambi.{k}={v}" for k, v in self.cambi]
        if metric:
            parts.append(f"name={metric}")
        return "\\\\:".join(parts)


def parse_model(value: Any) -> ModelChoice:
    """A model from the `NAME:key=value` syntax or a table; ValueError saying what is wrong."""
    if isinstance(value, str):
        name, *pairs = value.split(":")
        fields: dict[str, Any] = {}
        for pair in pairs:
            key, eq, text = pair.partition("=")
            if not eq or not key:
                raise ValueError(f"model parameter {pair!r} must be key=value (e.g. {name}:enable_transform=true)")
            fields[key.strip()] = text.strip()
    elif isinstance(value, Mapping):
        fields = dict(value)
        name = fields.pop("name", None)
        if not isinstance(name, str):
            raise ValueError("a model table needs name = \"vmaf_v0.6.1\" (a built-in model or a file path)")
    else:
        raise ValueError(f"must be a model name, a table or a list of them, got {value!r}")
    name = name.strip()
    if not name:
        raise ValueError("empty model name; `vmafx models` lists them")
    if is_model_file(name):
        bad = _UNSAFE & set(name)
        if bad:
            raise ValueError(f"model file path must not contain {' '.join(sorted(bad))}")
    elif not re.fullmatch(r"[A-Za-z0-9_.]+", name):
        raise ValueError(f"unknown model {name!r}; `vmafx models` lists the models this ffmpeg has")
    flags: dict[str, bool] = {}
    cambi: list[tuple[str, int]] = []
    metric = None
    for key, raw in fields.items():
        if key in _BOOL_KEYS:
            flags[key] = _bool(key, raw)
        elif key in _INT_KEYS:
            number = raw if isinstance(raw, int) and not isinstance(raw, bool) else \
                int(raw) if isinstance(raw, str) and raw.isdigit() else 0
            if number <= 0:
                raise ValueError(f"model parameter {key} must be a positive integer, got {raw!r}")
            cambi.append((key.split(".", 1)[1], number))
        elif key == "metric":
            if not isinstance(raw, str) or not _METRIC_RE.match(raw):
                raise ValueError(f"model parameter metric must be a name like vmaf_phone, got {raw!r}")
            metric = raw
        else:
            raise ValueError(f"unknown model parameter {key!r}; use {', '.join((*_BOOL_KEYS, 'metric', *_INT_KEYS))}")
    return ModelChoice(name=name, cambi=tuple(cambi), metric=metric, **flags)


def _bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    raise ValueError(f"model parameter {key} must be true or false, got {raw!r}")


def parse_models(value: Any) -> tuple[ModelChoice, ...]:
    """One model or a list of them; each metric name unique."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("give at least one model")
    chosen = tuple(item if isinstance(item, ModelChoice) else parse_model(item) for item in items)
    names = metric_names(chosen)
    if len(set(names)) != len(names):
        raise ValueError(f"two models would give the same metric ({', '.join(names)}); "
                         "add :metric=NAME to one of them")
    return chosen


def metric_names(models: Sequence[ModelChoice]) -> list[str]:
    """The result's metric per model: `vmaf` for one model, else each model's own name."""
    if len(models) == 1:
        return [models[0].metric or "vmaf"]
    return [m.metric or m.default_metric() for m in models]


# --- what a binary has ------------------------------------------------------------------------


def describe(name: str) -> dict[str, Any]:
    """What a built-in model is for, from its name and libvmaf's documentation."""
    v1 = _V1.match(name)
    info: dict[str, Any] = {"name": name}
    if v1:
        hfr, whole, tenth, uhd = v1.groups()
        distance = f"{whole}.{tenth}H" if tenth != "0" else f"{whole}H"
        info.update(generation="v1", display="2160p" if uhd else "1080p", viewing_distance=distance,
                    frame_rate="~50/60 fps (high frame rate)" if hfr else "24/30 fps",
                    score_range=[0, 110] if (uhd and whole == "3") else [0, 100], precision_bits=10)
        purpose = {("3", False): "standard 1080p TV at 3H", ("5", False): "phone (1080p seen from 5H)",
                   ("1", True): "4K TV at 1.5H (the default 4K choice)",
                   ("3", True): "consumer 4K TV at 3H (scores above 100 show 4K's gain over 1080p)"}
        info["purpose"] = purpose.get((whole, bool(uhd)), f"{info['display']} at {distance}")
        if hfr:
            info["purpose"] += ", high frame rate"
        return info
    uhd = "_4k" in name
    info.update(generation="v0" if re.search(r"_v0\.", name) else "unknown",
                display="2160p" if uhd else "1080p", viewing_distance="1.5H" if uhd else "3H",
                frame_rate=None, score_range=[0, 100], precision_bits=None)
    traits = []
    if name.endswith("neg"):
        traits.append("NEG: no enhancement gain (sharpening or contrast enhancement is not rewarded)")
    if "_float_" in name or name.startswith("vmaf_float"):
        traits.append("floating-point feature extractors")
    if "_b_v" in name:
        traits.append("bootstrap: a collection of models giving a confidence interval")
    info["purpose"] = (f"{'4K TV at 1.5H' if uhd else '1080p HDTV at 3H'}"
                       + (f"; {'; '.join(traits)}" if traits else ""))
    return info


def catalogue(ffmpeg: str) -> dict[str, dict[str, Any]]:
    """The built-in models of the ffmpeg at `ffmpeg`, each described, with whether it loads."""
    import concurrent.futures  # only `vmafx models` tries them all

    names = known_names(ffmpeg)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        tried = list(pool.map(lambda n: tried_model(ffmpeg, n), names))
    return {name: {**describe(name), **facts} for name, facts in zip(names, tried, strict=True)}


def known_names(ffmpeg: str) -> list[str]:
    """The built-in model names in the binary (read once per binary, then kept)."""
    facts = binfacts.remember("libvmaf-model-names", ffmpeg, lambda: {"names": names_in_binary(ffmpeg)})
    return list(facts.get("names", []))


def tried_model(ffmpeg: str, name: str) -> dict[str, Any]:
    """Whether `name` loads in this ffmpeg, has a score transform, gives a confidence interval (kept)."""
    def ask() -> dict[str, Any]:
        workdir = tempdirs.make("models")
        try:
            return _try(ffmpeg, name, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    return binfacts.remember(f"libvmaf-model:{name}", ffmpeg, ask)


def names_in_binary(path: str) -> list[str]:
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = set()
            at = data.find(b"vmaf_")
            while at >= 0:  # find() is memchr-fast; a regex over 170 MB is not
                match = _NAME_IN_BINARY.match(data, at)  # type: ignore[call-overload]
                if match and (at == 0 or not re.match(rb"[A-Za-z0-9_.]", data[at - 1:at])):
                    found.add(match.group(0).decode("ascii"))
                at = data.find(b"vmaf_", at + 5)
    except (OSError, ValueError) as exc:
        raise EnvironmentMissing(f"cannot read ffmpeg {path} to list its models: {exc}") from None
    return sorted(found)


def _try(ffmpeg: str, name: str, workdir: str) -> dict[str, Any]:
    """Load `name` in a two-frame run (a picture against its blur); does `enable_transform` change it?"""
    log = os.path.join(workdir, f"{name}.json")
    entries = [f"version={name}\\\\:name=plain", f"version={name}\\\\:enable_transform=true\\\\:name=transformed"]
    if "_b_v" in name:
        entries.append(f"version={name}\\\\:enable_conf_interval=true\\\\:name=ci")
    graph = ("testsrc2=size=640x360:rate=25:duration=0.08,format=yuv420p,split[a][b];[b]boxblur=2[blur];"
             f"[blur][a]libvmaf=model={'|'.join(entries)}:log_fmt=json:log_path={log}:n_threads=1")
    try:
        done = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-filter_complex", graph,
                               "-f", "null", "-"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env=child_environment())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"loads": False, "error": str(exc)}
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if "libvmaf" in ln or "model" in ln] or ["no message"]
        return {"loads": False, "error": re.sub(r"^\[[^\]]*\]\s*", "", lines[0].strip())}
    try:
        with open(log, encoding="utf-8") as fh:
            frame = json.load(fh)["frames"][0]["metrics"]
    except (OSError, ValueError, KeyError, IndexError):
        return {"loads": False, "error": "libvmaf wrote no log"}
    return {"loads": True,
            "transform": abs(frame.get("plain", 0.0) - frame.get("transformed", 0.0)) > 1e-9,
            "confidence_interval": any(k.startswith("ci_") or "_ci_" in k for k in frame)}


def check(models: Sequence[ModelChoice], ffmpeg: str) -> None:
    """Refuse, before anything is read, a model this ffmpeg does not have or cannot use as asked."""
    for model in models:
        if model == ModelChoice("vmaf_v0.6.1"):
            continue  # the filter's own default: asking about it would cost every plain run a model scan
        if model.is_file:
            if not os.path.isfile(model.name):
                raise BadInput(f"model file {model.name} does not exist")
            if model.enable_conf_interval:
                raise EnvironmentMissing(f"model {model.spec()}: ffmpeg's libvmaf filter loads one model per "
                                         "file, not a bootstrap collection; no confidence interval here")
            continue
        if model.name not in known_names(ffmpeg):
            raise BadInput(f"unknown model {model.name!r}; `vmafx models` lists the models this ffmpeg has")
        entry = tried_model(ffmpeg, model.name)
        if not entry.get("loads"):
            raise EnvironmentMissing(f"model {model.name} is listed in this ffmpeg's libvmaf but does not load "
                                     f"({entry.get('error', 'no reason given')}); `vmafx models` lists those that do")
        if model.enable_conf_interval and not entry.get("confidence_interval"):
            raise EnvironmentMissing(f"model {model.name}: this ffmpeg's libvmaf gives no confidence interval for "
                                     "it (that needs a bootstrap model, vmaf_b_*, that loads here)")
        if model.enable_transform and not entry.get("transform"):
            raise BadInput(f"model {model.name} has no score transform: enable_transform would change nothing "
                           "(the phone model is vmaf_v0.6.1:enable_transform=true)")
