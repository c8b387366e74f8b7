"""Jobs from a dataset listing: name templates with named fields pair distorted files with references.

A template is a URI whose file names (and folders) hold fields: `s3://set/refs/{clip}.mp4` and
`s3://set/enc/{clip}_{height}p_crf{crf}.mp4`. The folder before the first field is listed once,
recursively, through the storage backend that reads it (`StorageBackend.list`: one `rclone lsjson
-R` for a remote, one walk for a local folder); every listed file the template matches gives its
fields. A distorted pairs with the reference whose fields have the same values; all its fields
become the job's labels. Raw geometry comes from fields too: `{w}x{h}` (or `{width}`, `{height}`),
`{fps}`, `{bits}` (8 -> yuv420p, 10 -> yuv420p10le; `{chroma}` 420/422/444 when the name says it)
or `{pix_fmt}`, for `.yuv`/`.raw` files.

Everything that does not pair is said before anything is scored, one line each: a distorted whose
reference is missing, a reference no distorted pairs with, and a name the template reads in more
than one way (`{clip}_{codec}` over `a_b_x264`), which is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from vmafx_core.errors import BadInput
from vmafx_core.pixfmt import RAW_PIX_FMTS

#: fields that describe raw video, with what they match
GEOMETRY = {"w": r"\d+", "h": r"\d+", "width": r"\d+", "height": r"\d+", "fps": r"\d+(?:\.\d+)?(?:/\d+)?",
            "bits": r"\d+", "chroma": r"4[24][024]", "pix_fmt": r"[a-z0-9]+"}
RAW_SUFFIXES = (".yuv", ".raw")
_FIELD = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen
class Template:
    """A parsed name template: the folder that is listed and the pattern the rest must match."""

    text: str
    folder: str  #: listed recursively: everything before the first field, up to the last "/"
    fields: tuple[str, ...]
    _lazy: re.Pattern[str]
    _greedy: re.Pattern[str]

    @classmethod
    def parse(cls, text: str, role: str) -> Template:
        """The template, or BadInput with one line saying what is wrong with it."""
        where = f"{role} template {text!r}"
        if text.count("{") != text.count("}") or re.search(r"\{[^}]*\{|\}[^{]*\}", text.replace("{}", "")):
            raise BadInput(f"{where}: unbalanced braces; a field is {{name}}")
        names = _FIELD.findall(text)
        if not names:
            raise BadInput(f"{where}: has no {{field}}; name what varies, e.g. {{clip}}_crf{{crf}}.mp4")
        for name in names:
            if not _NAME.fullmatch(name):
                raise BadInput(f"{where}: {{{name}}} is not a field name (letters, digits and _)")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise BadInput(f"{where}: the field {{{repeated[0]}}} appears twice")
        if re.search(r"\}\{", text):
            raise BadInput(f"{where}: two fields side by side cannot be told apart; put a separator between them")
        cut = text.rfind("/", 0, text.index("{"))
        folder, rest = text[:cut], text[cut + 1:]
        if cut <= 0 or folder.endswith(("/", ":")):
            raise BadInput(f"{where}: give the folder to list before the first field, e.g. ./refs/{{clip}}.mp4 "
                           "or s3://bucket/refs/{clip}.mp4")
        return cls(text, folder, tuple(names), _compile(rest, lazy=True), _compile(rest, lazy=False))

    def match(self, relative: str) -> tuple[dict[str, str] | None, str | None]:
        """(fields, how else the name reads) of a path relative to `folder`; None when it does not
        match. Read with the shortest and with the longest field values: two readings, ambiguous."""
        lazy = self._lazy.fullmatch(relative)
        if lazy is None:
            return None, None
        greedy = self._greedy.fullmatch(relative)
        if greedy is None or greedy.groupdict() == lazy.groupdict():
            return lazy.groupdict(), None
        return lazy.groupdict(), " or ".join(", ".join(f"{k}={v}" for k, v in m.groupdict().items())
                                              for m in (lazy, greedy))

    def uri(self, relative: str) -> str:
        return f"{self.folder}/{relative}"


def _compile(rest: str, *, lazy: bool) -> re.Pattern[str]:
    pattern, last = "", 0
    for m in _FIELD.finditer(rest):
        pattern += re.escape(rest[last:m.start()])
        name = m.group(1)
        pattern += f"(?P<{name}>{GEOMETRY.get(name, r'[^/]+?' if lazy else r'[^/]+')})"
        last = m.end()
    return re.compile(pattern + re.escape(rest[last:]))


@attrs.frozen
class Pairing:
    """What a listing gave: the jobs, and every file that did not pair, with why."""

    jobs: list[dict[str, Any]]
    #: distorted files without a reference: (uri, the reference they would pair with)
    orphans: list[tuple[str, str]] = attrs.field(factory=list)
    #: references no distorted pairs with
    unused: list[str] = attrs.field(factory=list)
    #: names the templates read in more than one way: (uri, why)
    ambiguous: list[tuple[str, str]] = attrs.field(factory=list)
    #: files listed that match neither template
    unmatched: int = 0

    def problems(self) -> list[str]:
        """One line per file that did not pair, ambiguities first."""
        return ([f"ambiguous: {uri}: {why}" for uri, why in self.ambiguous]
                + [f"no reference: {uri} (looked for {ref})" for uri, ref in self.orphans]
                + [f"no distorted: {uri}" for uri in self.unused])


Lister = Callable[[str], Sequence[str]]


def pair(reference: str, distorted: str, lister: Lister, base: Mapping[str, Any] | None = None) -> Pairing:
    """Pair the files `lister(folder)` finds under both templates into batch job lines.

    `base` is a job (as a job file holds it, without reference and distorted) every line starts
    from: scorer, alignment, storage options, labels. Each line's `id` is the distorted's path
    relative to its template's folder, its labels the base's and then every field of its name.
    """
    ref_t, dis_t = Template.parse(reference, "reference"), Template.parse(distorted, "distorted")
    missing = [f for f in ref_t.fields if f not in dis_t.fields]
    if missing:
        raise BadInput(f"reference template field {{{missing[0]}}} is not in the distorted template "
                       f"{distorted!r}: a distorted is paired with its reference by the fields both have")
    for t, role in ((ref_t, "reference"), (dis_t, "distorted")):
        if t.text.lower().endswith(RAW_SUFFIXES):
            _raw_fields(t, role)
    listings: dict[str, Sequence[str]] = {}
    for folder in dict.fromkeys((ref_t.folder, dis_t.folder)):
        listings[folder] = lister(folder)
        if not listings[folder]:  # object storage has no folders: a wrong prefix lists nothing
            raise BadInput(f"{folder}: lists no files (no such folder, or an empty one)")
    ambiguous: list[tuple[str, str]] = []
    distorted_files: list[tuple[str, dict[str, str]]] = []
    taken: set[str] = set()
    unmatched: set[str] = set()
    for relative in listings[dis_t.folder]:
        fields, unclear = dis_t.match(relative)
        uri = dis_t.uri(relative)
        if fields is None:
            unmatched.add(uri)
            continue
        taken.add(uri)
        if unclear:
            ambiguous.append((uri, f"the template reads it as {unclear}"))
            continue
        distorted_files.append((relative, fields))
    refs: dict[tuple[str, ...], list[str]] = {}
    ref_fields: dict[str, dict[str, str]] = {}
    for relative in listings[ref_t.folder]:
        uri = ref_t.uri(relative)
        if uri in taken:  # a file the distorted template matched is a distorted
            continue
        fields, unclear = ref_t.match(relative)
        if fields is None:
            unmatched.add(uri)
            continue
        unmatched.discard(uri)
        if unclear:
            ambiguous.append((uri, f"the reference template reads it as {unclear}"))
            continue
        refs.setdefault(tuple(fields[f] for f in ref_t.fields), []).append(uri)
        ref_fields[uri] = fields
    jobs: list[dict[str, Any]] = []
    orphans: list[tuple[str, str]] = []
    used: set[str] = set()
    base = dict(base or {})
    for relative, fields in distorted_files:
        uri = dis_t.uri(relative)
        key = tuple(fields[f] for f in ref_t.fields)
        found = refs.get(key, [])
        if not found:
            orphans.append((uri, _fill(reference, fields)))
            continue
        used.add(found[0])
        labels = {**(base.get("labels") or {}), **fields}
        job = {**base, "id": relative, "reference": _source(found[0], ref_fields[found[0]]),
               "distorted": _source(uri, fields), "labels": labels}
        jobs.append(job)
    unused = [uri for uris in refs.values() for uri in uris if uri not in used]
    return Pairing(jobs, orphans, unused, ambiguous, len(unmatched - taken))


def _fill(template: str, fields: Mapping[str, str]) -> str:
    return _FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def _raw_fields(t: Template, role: str) -> None:
    has = set(t.fields)
    if not ({"w", "h"} <= has or {"width", "height"} <= has) or "fps" not in has:
        raise BadInput(f"{role} template {t.text!r}: raw video needs its geometry in the name: {{w}}x{{h}} (or "
                       "{width}, {height}) and {fps}, with {bits} or {pix_fmt} (default 8-bit 4:2:0)")


def _source(uri: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """A job's source: its URI, and for a raw file the geometry its name gives."""
    if not uri.lower().endswith(RAW_SUFFIXES):
        return {"uri": uri}
    width, height = int(fields.get("w") or fields["width"]), int(fields.get("h") or fields["height"])
    num, _, den = fields["fps"].partition("/")
    fps = float(num) / float(den) if den else float(num)
    pix_fmt = fields.get("pix_fmt")
    if pix_fmt is None:
        bits, chroma = int(fields.get("bits", 8)), fields.get("chroma", "420")
        pix_fmt = f"yuv{chroma}p" + (f"{bits}le" if bits > 8 else "")
    if pix_fmt not in RAW_PIX_FMTS:
        raise BadInput(f"{uri}: its name gives pixel format {pix_fmt}, which vmafx does not read as raw video "
                       f"({', '.join(RAW_PIX_FMTS)})")
    return {"uri": uri, "raw": {"width": width, "height": height, "pix_fmt": pix_fmt, "fps": fps}}


def lister_for(storage_options: Mapping[str, Any] | None = None, plugins: Any = None) -> Lister:
    """A lister through the installed storage backends: the one `auto` would choose for the folder."""
    from vmafx_core.plugins import shared

    pl = plugins or shared()
    options = dict(storage_options or {})

    def list_folder(folder: str) -> Sequence[str]:
        [backend] = pl.choose_storage([folder], "auto", options)
        if backend.list is None:
            raise BadInput(f"{folder}: the storage backend {backend.name} cannot list folders")
        return backend.list(folder, options)

    return list_folder
