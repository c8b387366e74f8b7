"""What each input's code values mean, and how the distorted's are made to mean the reference's.

VMAF compares code values. Two inputs whose code values stand for different colours (a BT.601 SD
rung of a BT.709 reference, a full-range encode of a limited-range master, a PQ master against an
SDR encode) are only comparable after one is converted into the other's description. ffmpeg would
otherwise decide that by accident: when it auto-inserts a scale filter between filters it converts
matrix and range implicitly, and when it needs none it converts nothing. So vmafx decides here,
for every path that builds a pair's chains (single pairs, several distorted, ladders, batches):

- each input's description (range, matrix, primaries, transfer, chroma location, bit depth, HDR
  side data) is read from its stream; what the stream does not state is assumed the way players
  do (by picture size) and marked assumed;
- every chain starts by tagging its frames with that description (`setparams`), converts with
  `zscale` naming both descriptions where the distorted's differs, and ends in a `format` filter
  pinned to the reference's matrix and range, so ffmpeg's negotiation has nothing left to convert;
- HDR against SDR is refused unless a named tone-mapping operator is asked for (a proxy score);
  an HDR pair needs an explicit policy (`hdr_policy`);
- every decision goes into the result (`decisions`) and, when the pair is not plain same-described
  SDR, a `colour` line into the summary.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from vmafx_core.errors import BadInput
from vmafx_core.pixfmt import chroma_of, depth_of

RANGES = ("tv", "pc")
#: transfers of high dynamic range: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG)
HDR_TRANSFERS = {"smpte2084": "PQ", "arib-std-b67": "HLG"}
#: SDR transfers that are one curve (BT.709's, which BT.601 and BT.2020 share): no conversion between
#: them. The BT.470 tags (gamma28, gamma22) are what SD streams carry for "the 625/525-line system";
#: their cameras used that same curve, and converting by the nominal 2.8 would change what is shown
_SDR_SAME_CURVE = {"bt709", "smpte170m", "bt2020-10", "bt2020-12", "gamma28", "gamma22"}
#: zscale's names for the transfers ffmpeg prints differently
_ZSCALE_TRANSFER = {"gamma28": "bt470bg", "gamma22": "bt470m"}
#: matrices that are one matrix under two names (BT.601's 525- and 625-line tags)
_SAME_MATRIX = {"bt470bg": "bt601", "smpte170m": "bt601"}
#: the primaries and transfer a matrix's standard goes with, for a stream that tags only the matrix
_WITH_MATRIX = {"bt709": ("bt709", "bt709"), "smpte170m": ("smpte170m", "smpte170m"),
                "bt470bg": ("bt470bg", "smpte170m"), "bt2020nc": ("bt2020", "bt709"),
                "bt2020c": ("bt2020", "bt709"), "smpte240m": ("smpte240m", "smpte240m")}
#: ffmpeg prints one name where matrix, primaries and transfer have the same number
_ONE_NAME = {"bt709": ("bt709", "bt709", "bt709"), "smpte170m": ("smpte170m", "smpte170m", "smpte170m"),
             "bt470bg": ("bt470bg", "bt470bg", "gamma28"), "smpte240m": ("smpte240m", "smpte240m", "smpte240m"),
             "fcc": ("fcc", "bt470m", "gamma22")}
#: pixel formats that hold RGB: their matrix is the identity ("gbr"), their range full
RGB_PREFIXES = ("gbr", "rgb", "bgr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr")
CHROMA_LOCATIONS = ("left", "center", "topleft", "top", "bottomleft", "bottom")
#: tone-mapping operators of ffmpeg's `tonemap` filter
TONEMAP_OPERATORS = ("clip", "linear", "gamma", "reinhard", "hable", "mobius")
#: HDR policies: PU21 before the SDR models, code values as stored, or HDR-VMAF models
HDR_POLICIES = ("pu21", "as-is", "hdr-models")
#: an HLG picture's absolute luminance needs a display: BT.2100's reference display peak, cd/m2
HLG_DISPLAY_PEAK = 1000.0
#: PU21's "banding_glare" parameters (Mantiuk and Azimi, PCS 2021), and the luminance range it covers
PU21_PARAMS = (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204,
               596.3148142)
PU21_L_MIN, PU21_L_MAX = 0.005, 10000.0


@attrs.frozen
class Description:
    """One input's colour description as scored: stated by its stream, or assumed (`assumed`)."""

    range: str
    matrix: str
    primaries: str
    transfer: str
    chroma_location: str | None  #: None for 4:4:4, where there is no subsampled chroma to site
    bit_depth: int
    assumed: tuple[str, ...] = ()  #: the fields the stream did not state
    hdr_metadata: tuple[str, ...] = ()  #: mastering display, content light level, Dolby Vision lines

    @property
    def dynamic_range(self) -> str:
        """"PQ", "HLG" or "SDR"."""
        return HDR_TRANSFERS.get(self.transfer, "SDR")

    @property
    def is_hdr(self) -> bool:
        return self.transfer in HDR_TRANSFERS

    def as_dict(self) -> dict[str, Any]:
        return {"range": self.range, "matrix": self.matrix, "primaries": self.primaries,
                "transfer": self.transfer, "dynamic_range": self.dynamic_range,
                "chroma_location": self.chroma_location, "bit_depth": self.bit_depth,
                "assumed": list(self.assumed), "hdr_metadata": list(self.hdr_metadata)}

    def text(self) -> str:
        """`tv bt709/bt709/bt709 left 8-bit` with assumed fields starred."""
        def mark(field: str, value: str | None) -> str:
            return f"{value}*" if field in self.assumed else str(value)
        parts = [mark("range", self.range), "/".join(mark(f, getattr(self, f))
                                                     for f in ("matrix", "primaries", "transfer"))]
        if self.chroma_location:
            parts.append(mark("chroma_location", self.chroma_location))
        return " ".join([*parts, f"{self.bit_depth}-bit"])


def parse_colour_words(words: list[str]) -> dict[str, str]:
    """Range, matrix, primaries, transfer and chroma location out of the words in ffmpeg's
    `yuv420p(tv, bt2020nc/bt2020/smpte2084, progressive, left)`; "unknown" means unstated."""
    found: dict[str, str] = {}
    for raw in words:
        word = raw.strip()
        if word in RANGES:
            found["range"] = word
        elif word.count("/") == 2:
            for key, value in zip(("matrix", "primaries", "transfer"), word.split("/"), strict=True):
                if value not in ("unknown", "reserved", "unspecified"):
                    found[key] = value
        elif word in _ONE_NAME or word in _WITH_MATRIX:
            matrix, primaries, transfer = _ONE_NAME.get(word) or (word, *_WITH_MATRIX[word])
            found.update(matrix=matrix, primaries=primaries, transfer=transfer)
        elif word in CHROMA_LOCATIONS:
            found["chroma_location"] = word
    return found


def describe(stated: dict[str, str], pix_fmt: str, width: int, height: int,
             hdr_metadata: tuple[str, ...] = ()) -> Description:
    """An input's description: what its stream states, the rest assumed as players assume it.

    Players take an untagged picture at least 1280 wide or over 576 lines high as BT.709 (HD), a
    576-line one as BT.601 625-line (PAL), and anything smaller as BT.601 525-line (NTSC); range
    as limited (a yuvj format as full); transfer as the matrix's standard SDR curve; 4:2:0 and
    4:2:2 chroma as sited left (MPEG-2, H.264, HEVC, AV1's default; JPEG's yuvj at the centre).
    """
    assumed: list[str] = []
    rgb = pix_fmt.startswith(RGB_PREFIXES)
    full_by_format = pix_fmt.startswith("yuvj") or rgb or pix_fmt.startswith("gray")
    range_ = stated.get("range")
    if range_ is None:
        range_ = "pc" if full_by_format else "tv"
        assumed.append("range")
    by_size = "bt709" if width >= 1280 or height > 576 else "bt470bg" if height == 576 else "smpte170m"
    if stated.get("transfer") in HDR_TRANSFERS:  # HDR is BT.2100: BT.2020's matrix and primaries
        by_size = "bt2020nc"
    matrix = "gbr" if rgb else stated.get("matrix")
    if matrix is None:
        matrix = by_size
        assumed.append("matrix")
    primaries, transfer = stated.get("primaries"), stated.get("transfer")
    implied = _WITH_MATRIX.get(by_size if rgb else matrix, ("bt709", "bt709"))
    if primaries is None:
        primaries = implied[0]
        assumed.append("primaries")
    if transfer is None:
        transfer = implied[1] if implied[1] in _SDR_SAME_CURVE else "bt709"
        assumed.append("transfer")
    chroma: str | None = None
    if chroma_of(pix_fmt) != "444":
        chroma = stated.get("chroma_location")
        if chroma is None:
            chroma = "center" if pix_fmt.startswith("yuvj") else "left"
            assumed.append("chroma_location")
    return Description(range=range_, matrix=matrix, primaries=primaries, transfer=transfer,
                       chroma_location=chroma, bit_depth=depth_of(pix_fmt), assumed=tuple(assumed),
                       hdr_metadata=hdr_metadata)


@attrs.frozen
class ColourPlan:
    """The colour filters of a pair's two chains, and the record of why."""

    reference: Description
    distorted: Description
    #: per role: the filters that open its chain (tagging, conversion), before deinterlacing and scaling
    pre: dict[str, tuple[str, ...]]
    #: per role: the filters that close its chain, after scaling (PU21 encoding)
    post: dict[str, tuple[str, ...]]
    #: options appended to the distorted's scale filter: chroma siting and "convert nothing"
    scale_options: str
    #: options appended to each chain's final `format` filter (matrix and range pinned)
    format_options: str
    decisions: dict[str, Any]
    summary: tuple[str, ...]


def _same_matrix(a: str, b: str) -> bool:
    return _SAME_MATRIX.get(a, a) == _SAME_MATRIX.get(b, b)


def _same_transfer(a: str, b: str) -> bool:
    return a == b or (a in _SDR_SAME_CURVE and b in _SDR_SAME_CURVE)


def differences(ref: Description, dis: Description) -> list[str]:
    """The fields in which the distorted's code values mean something else than the reference's."""
    diff = []
    if ref.range != dis.range:
        diff.append("range")
    if not _same_matrix(ref.matrix, dis.matrix):
        diff.append("matrix")
    if ref.primaries != dis.primaries:
        diff.append("primaries")
    if not _same_transfer(ref.transfer, dis.transfer):
        diff.append("transfer")
    return diff


def tag(desc: Description) -> str:
    """`setparams` stating `desc` on every frame: what the chain's filters then read, untagged or not."""
    opts = [f"range={desc.range}", f"colorspace={desc.matrix}", f"color_primaries={desc.primaries}",
            f"color_trc={desc.transfer}"]
    if desc.chroma_location:
        opts.append(f"chroma_location={desc.chroma_location}")
    return "setparams=" + ":".join(opts)


def zscale(src: Description, dst: Description, *, npl: float | None = None, out_transfer: str | None = None) -> str:
    """A `zscale` that names both descriptions: nothing is taken from the frames' tags."""
    opts = [f"rin={src.range}", f"min={src.matrix}", f"pin={src.primaries}",
            f"tin={_ZSCALE_TRANSFER.get(src.transfer, src.transfer)}"]
    if src.chroma_location:
        opts.append(f"cin={src.chroma_location}")
    out = out_transfer or dst.transfer
    opts += [f"r={dst.range}", f"m={dst.matrix}", f"p={dst.primaries}", f"t={_ZSCALE_TRANSFER.get(out, out)}"]
    if dst.chroma_location:
        opts.append(f"c={dst.chroma_location}")
    if npl is not None:
        opts.append(f"npl={npl:g}")
    return "zscale=" + ":".join(opts) + ":f=bicubic"


def parse_tonemap(text: str) -> tuple[str, dict[str, str]]:
    """"hable" or "mobius:param=0.3:desat=0" -> operator and its parameters; ValueError when unknown."""
    name, _, rest = text.partition(":")
    if name not in TONEMAP_OPERATORS:
        raise ValueError(f"unknown tone-mapping operator {name!r}; one of {', '.join(TONEMAP_OPERATORS)}")
    params: dict[str, str] = {}
    for item in filter(None, rest.split(":")):
        key, eq, value = item.partition("=")
        if not eq or key not in ("param", "desat", "peak") or not _is_number(value):
            raise ValueError(f"tone-mapping parameter {item!r}: param=N, desat=N or peak=N")
        params[key] = value
    return name, params


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def tonemap_chain(hdr: Description, sdr: Description, operator: str, params: dict[str, str]) -> list[str]:
    """The HDR side mapped into the SDR side's description: linear light (1.0 = 100 cd/m2), the
    SDR primaries, ffmpeg's `tonemap` with the named operator, then the SDR transfer and matrix."""
    linear_hdr = attrs.evolve(hdr, range="pc", matrix="gbr", chroma_location=None)
    linear_sdr = attrs.evolve(linear_hdr, primaries=sdr.primaries)
    settings = ":".join([f"tonemap={operator}", *(f"{k}={v}" for k, v in params.items())])
    return [zscale(hdr, linear_hdr, npl=100, out_transfer="linear"), "format=gbrpf32le",
            zscale(attrs.evolve(linear_hdr, transfer="linear"), linear_sdr, out_transfer="linear"),
            f"tonemap={settings}",
            zscale(attrs.evolve(linear_sdr, transfer="linear"), sdr)]


def pu21(luminance: float) -> float:
    """PU21 (banding_glare) of an absolute luminance in cd/m2, clamped to the range it is fitted on."""
    p = PU21_PARAMS
    y = min(max(luminance, PU21_L_MIN), PU21_L_MAX)
    return max(p[6] * (((p[0] + p[1] * y ** p[3]) / (1 + p[2] * y ** p[3])) ** p[4] - p[5]), 0.0)


def _pu21_expr(desc: Description) -> str:
    """A `lutyuv` luma expression: 10-bit code value -> absolute luminance (ST 2084's EOTF, or HLG's
    inverse OETF with the BT.2100 system gamma on a 1000 cd/m2 display) -> PU21 -> the range
    [PU21(0.005), PU21(10000)] spread over the 10-bit limited range, rounded. Luma stands for luminance (one value per
    pixel, as VMAF reads only luma). The output is limited-range 10-bit (64..940): ffmpeg's `lutyuv`
    clips luma to that range, and the frames stay tagged as limited."""
    lo, hi = (64.0, 940.0) if desc.range == "tv" else (0.0, 1023.0)
    e = f"clip((val-{lo:g})/{hi - lo:g},0,1)"
    if desc.transfer == "smpte2084":
        m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        ep = f"pow({e},{1 / m2!r})"
        lum = f"10000*pow(max({ep}-{c1!r},0)/({c2!r}-{c3!r}*{ep}),{1 / m1!r})"
    else:  # HLG: scene light by the inverse OETF, display light by the OOTF's gamma on luminance
        a, b, c = 0.17883277, 1 - 4 * 0.17883277, 0.5 - 0.17883277 * math.log(4 * 0.17883277)
        scene = f"if(lte({e},0.5),{e}*{e}/3,(exp(({e}-{c!r})/{a!r})+{b!r})/12)"
        lum = f"{HLG_DISPLAY_PEAK:g}*pow({scene},1.2)"
    p = PU21_PARAMS
    y = f"clip({lum},{PU21_L_MIN},{PU21_L_MAX:g})"
    yp = f"pow({y},{p[3]!r})"
    v = f"max({p[6]!r}*(pow(({p[0]!r}+{p[1]!r}*{yp})/(1+{p[2]!r}*{yp}),{p[4]!r})-{p[5]!r}),0)"
    v_lo, v_hi = pu21(PU21_L_MIN), pu21(PU21_L_MAX)
    return f"floor(64+({v}-{v_lo!r})/{v_hi - v_lo!r}*876+0.5)"


def pu21_chain(desc: Description) -> list[str]:
    """PU21 on luma at 10 bits; chroma set neutral (VMAF reads luma only)."""
    return ["format=yuv420p10le", f"lutyuv=y='{_pu21_expr(desc)}':u=512:v=512"]


def plan_colour(ref: Description, dis: Description, settings: Any, *, scaled: bool,
                hdr_models: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> ColourPlan:
    """Decide how the two descriptions are made comparable; BadInput where the user must choose.

    `settings` is the job's alignment table (`colour`, `hdr_policy`, `tonemap`); `hdr_models` the
    HDR-VMAF models this ffmpeg's libvmaf has (for `hdr_policy = "hdr-models"`), `models` the
    names of the models the job scores with.
    """
    mode = getattr(settings, "colour", "convert")
    policy = getattr(settings, "hdr_policy", None)
    tonemap = getattr(settings, "tonemap", None)
    pre: dict[str, list[str]] = {"reference": [], "distorted": []}
    post: dict[str, list[str]] = {"reference": [], "distorted": []}
    decisions: dict[str, Any] = {"mode": mode, "reference": ref.as_dict(), "distorted": dis.as_dict(),
                                 "conversion": None, "hdr_policy": None, "tonemap": None, "proxy": False,
                                 "validated": True}
    summary: list[str] = []
    scale_options = ""
    format_options = ""
    stored = ref
    if ref.matrix == "gbr":
        # RGB is scored as YUV: limited range, the matrix of the standard its primaries belong to
        yuv = {"bt470bg": "bt470bg", "smpte170m": "smpte170m"}.get(ref.primaries, "bt709")
        ref = attrs.evolve(ref, matrix=yuv, range="tv")
        summary.append(f"colour: RGB reference scored as YUV ({yuv}, limited range)")
    # an RGB distorted meets the pinned format as the reference does: the one RGB -> YUV conversion of
    # the scoring format, by the matrix and range it names; only its primaries or transfer may differ
    diff = differences(ref, attrs.evolve(dis, matrix=ref.matrix, range=ref.range) if dis.matrix == "gbr" else dis)
    if mode == "as-is":
        decisions["validated"] = not (diff or ref.is_hdr or dis.is_hdr)
        summary.append(f"colour as stored (--colour as-is): code values scored without conversion "
                       f"(reference {ref.text()}, distorted {dis.text()})"
                       + (f"; they differ in {', '.join(diff)}" if diff else ""))
        # the distorted relabelled as the reference, so that ffmpeg's negotiation converts nothing either
        relabel = dis if dis.matrix == "gbr" else attrs.evolve(stored, chroma_location=dis.chroma_location)
        decisions["relabelled"] = relabel != dis
        return ColourPlan(ref, dis, {"reference": (tag(stored),), "distorted": (tag(relabel),)},
                          {"reference": (), "distorted": ()}, "",
                          f":color_spaces={ref.matrix}:color_ranges={ref.range}", decisions, tuple(summary))
    pre["reference"].append(tag(stored))
    pre["distorted"].append(tag(dis))
    target = ref
    dis_now = dis  # what the distorted's frames mean after its opening filters
    if ref.is_hdr != dis.is_hdr:
        hdr_role, sdr_role = ("reference", "distorted") if ref.is_hdr else ("distorted", "reference")
        hdr, sdr = (ref, dis) if ref.is_hdr else (dis, ref)
        if not tonemap:
            raise BadInput(f"reference is {_transfer_text(ref)} and distorted {_transfer_text(dis)}: an HDR "
                           "picture against an SDR one has no meaningful VMAF; to score a proxy, tone-map the "
                           f"HDR side with --tonemap OPERATOR (one of {', '.join(TONEMAP_OPERATORS)}; "
                           "alignment.tonemap)")
        operator, params = parse_tonemap(tonemap)
        pre[hdr_role].append(",".join(tonemap_chain(hdr, sdr, operator, params)))
        target = sdr
        decisions.update(tonemap={"side": hdr_role, "operator": operator, "parameters": params,
                                  "filters": pre[hdr_role][-1]}, proxy=True, validated=False)
        summary.append(f"colour: {hdr_role} {_transfer_text(hdr)} tone-mapped to {sdr_role}'s SDR "
                       f"({operator}{''.join(f' {k}={v}' for k, v in params.items())}): the score is a proxy")
        diff = []  # the HDR side is mapped into the SDR side's description: nothing else differs
        if hdr_role == "distorted":
            dis_now = sdr
    elif ref.is_hdr and dis.is_hdr:
        if ref.transfer != dis.transfer:
            raise BadInput(f"reference is {_transfer_text(ref)} and distorted {_transfer_text(dis)}: two HDR "
                           "transfers; convert one into the other before scoring")
        if policy is None:
            raise BadInput(f"both inputs are HDR ({ref.dynamic_range}) and VMAF's SDR models do not "
                           "describe HDR: choose --hdr-policy pu21 (PU21 of absolute luminance before the SDR "
                           "models), hdr-models (HDR-VMAF models, when this ffmpeg has them) or as-is (code "
                           "values as stored, not validated); job field alignment.hdr_policy")
        if policy == "hdr-models" and not hdr_models:
            raise BadInput("--hdr-policy hdr-models: this ffmpeg's libvmaf has no HDR-VMAF models "
                           "(`vmafx models` lists what it has); choose pu21 or as-is")
        if policy == "hdr-models" and not set(models) & set(hdr_models):
            raise BadInput(f"--hdr-policy hdr-models: score with one of this ffmpeg's HDR-VMAF models "
                           f"(--model {' or '.join(hdr_models)}); the job's models are SDR ones")
        decisions["hdr_policy"] = policy
        if policy == "pu21":
            post["reference"] += pu21_chain(ref)
            post["distorted"] += pu21_chain(ref if diff else dis)
            decisions["pu21"] = {"parameters": "banding_glare", "luminance_range": [PU21_L_MIN, PU21_L_MAX],
                                 "hlg_display_peak": HLG_DISPLAY_PEAK if ref.transfer == "arib-std-b67" else None,
                                 "filter": post["reference"][-1]}
            decisions["validated"] = False
            summary.append(f"colour: HDR ({ref.dynamic_range}) pair scored with the SDR models on PU21-encoded "
                           "luminance (--hdr-policy pu21; research practice, not a calibrated VMAF)")
        elif policy == "as-is":
            decisions["validated"] = False
            summary.append(f"colour: HDR ({ref.dynamic_range}) pair scored on code values as stored with SDR "
                           "models (--hdr-policy as-is): not validated")
        else:
            summary.append(f"colour: HDR ({ref.dynamic_range}) pair scored with HDR-VMAF models")
    if diff:
        # at the distorted's own size; where it is scaled next, the scaler moves the chroma siting
        converted = attrs.evolve(target, chroma_location=dis.chroma_location) if scaled else target
        conversion = zscale(dis, converted)
        pre["distorted"].append(conversion)
        decisions["conversion"] = {"filter": conversion, "differs_in": diff}
        summary.append(f"colour: distorted converted {dis.text()} -> {target.text()} ({', '.join(diff)} "
                       "differed)")
    else:
        converted = dis_now
    if scaled and converted.chroma_location and target.chroma_location:
        scale_options = (f":in_chroma_loc={converted.chroma_location}:out_chroma_loc={target.chroma_location}"
                         f":in_range={target.range}:out_range={target.range}")
        if converted.chroma_location != target.chroma_location:
            decisions["chroma_siting"] = f"{converted.chroma_location} -> {target.chroma_location} when scaled"
    format_options = f":color_spaces={target.matrix}:color_ranges={target.range}"
    decisions["scored_as"] = target.as_dict()
    return ColourPlan(ref, dis, {k: tuple(v) for k, v in pre.items()}, {k: tuple(v) for k, v in post.items()},
                      scale_options, format_options, decisions, tuple(summary))


def _transfer_text(desc: Description) -> str:
    return f"{desc.dynamic_range} ({desc.transfer})" if desc.is_hdr else f"SDR ({desc.transfer})"
