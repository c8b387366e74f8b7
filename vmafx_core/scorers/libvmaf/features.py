"""libvmaf's extra features and their options: `--feature cambi:full_ref=true`.

Syntax: `NAME[:option=value...]` on the command line and in a job file's `features` list, or a
table `{ name = "psnr", enable_chroma = false }`. libvmaf silently ignores an option it does not
know, so the options are checked here against those its documentation (resource/doc/features.md)
names; a wrong one is one line and exit 2 instead of a score computed without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

#: feature -> option -> type of its value
OPTIONS: dict[str, dict[str, type]] = {
    "psnr": {"enable_chroma": bool, "enable_mse": bool, "enable_apsnr": bool, "reduced_hbd_peak": bool,
             "min_sse": float},
    "float_ssim": {"enable_lcs": bool, "enable_db": bool, "clip_db": bool, "scale": int},
    "float_ms_ssim": {"enable_lcs": bool, "enable_db": bool, "clip_db": bool},
    "ciede": {},
    "cambi": {"full_ref": bool, "enc_width": int, "enc_height": int, "enc_bitdepth": int, "src_width": int,
              "src_height": int, "window_size": int, "topk": float, "tvi_threshold": float,
              "max_log_contrast": int},
    "psnr_hvs": {},
}
FEATURES = tuple(OPTIONS)


@attrs.frozen
class FeatureChoice:
    name: str
    options: tuple[tuple[str, str], ...] = ()  #: (option, value as libvmaf reads it)

    def spec(self) -> str:
        return ":".join([self.name, *(f"{k}={v}" for k, v in self.options)])

    def filter_value(self) -> str:
        """This feature as one entry of the libvmaf filter's `feature` option."""
        return "\\\\:".join([f"name={self.name}", *(f"{k}={v}" for k, v in self.options)])


def parse_feature(value: Any) -> FeatureChoice:
    if isinstance(value, FeatureChoice):
        return value
    if isinstance(value, str):
        name, *pairs = value.split(":")
        given: dict[str, Any] = {}
        for pair in pairs:
            key, eq, text = pair.partition("=")
            if not eq or not key:
                raise ValueError(f"feature option {pair!r} must be option=value (e.g. cambi:full_ref=true)")
            given[key.strip()] = text.strip()
    elif isinstance(value, Mapping):
        given = dict(value)
        name = given.pop("name", None)
        if not isinstance(name, str):
            raise ValueError("a feature table needs name = \"psnr\" (or another feature)")
    else:
        raise ValueError(f"must be a feature name or table, got {value!r}")
    name = name.strip()
    if name not in OPTIONS:
        raise ValueError(f"unknown feature {name!r}; use one of {', '.join(FEATURES)}")
    allowed = OPTIONS[name]
    options: list[tuple[str, str]] = []
    for key, raw in given.items():
        kind = allowed.get(key)
        if kind is None:
            known = ", ".join(allowed) or "none"
            raise ValueError(f"feature {name} has no option {key!r} (its options: {known})")
        options.append((key, _value(name, key, raw, kind)))
    return FeatureChoice(name=name, options=tuple(options))


def _value(feature: str, key: str, raw: Any, kind: type) -> str:
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    ok = {bool: r"true|false", int: r"\d+", float: r"\d+(\.\d+)?"}[kind]
    if not re.fullmatch(ok, text):
        raise ValueError(f"feature option {feature}:{key} must be {'true or false' if kind is bool else 'a number'}"
                         f", got {raw!r}")
    return text
