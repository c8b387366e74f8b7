"""Colour decisions: what a probe states, what is assumed, and what each pair's chains do (no ffmpeg run)."""

from __future__ import annotations

import pytest

from vmafx_core import colour
from vmafx_core.alignment import make_plan
from vmafx_core.errors import BadInput
from vmafx_core.ffmpeg import parse_stream_info
from vmafx_core.job import Alignment, InvalidJob, parse_job


def _info(stream: str, side_data: str = ""):  # type: ignore[no-untyped-def]
    text = f"  Duration: 00:00:01.00, start: 0.000000, bitrate: 100 kb/s\n  Stream #0:0: Video: {stream}\n{side_data}"
    info = parse_stream_info(text)
    assert info is not None
    return info


def _desc(stream: str) -> colour.Description:
    from vmafx_core.alignment import describe_colour

    return describe_colour(_info(stream))


HD709 = "h264, yuv420p(tv, bt709, progressive, left), 1280x720, 25 fps, 25 tbr, 1k tbn"
SD601 = "h264, yuv420p(tv, smpte170m, progressive, left), 640x360, 25 fps, 25 tbr, 1k tbn"
FULL709 = "h264, yuvj420p(pc, bt709, progressive, left), 1280x720, 25 fps, 25 tbr, 1k tbn"
PQ = "hevc (Main 10), yuv420p10le(tv, bt2020nc/bt2020/smpte2084, progressive, left), 1280x720, 25 fps, 25 tbr, 1k tbn"
HLG = "hevc (Main 10), yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67, progressive), 1280x720, 25 fps, 25 tbr, 1k tbn"
UNTAGGED_HD = "h264, yuv420p(progressive), 1920x1080, 25 fps, 25 tbr, 1k tbn"


@pytest.mark.parametrize(("printed", "stated"), [
    ("yuv420p(tv, bt709, progressive, left)",
     {"range": "tv", "matrix": "bt709", "primaries": "bt709", "transfer": "bt709", "chroma_location": "left"}),
    ("yuv420p10le(tv, bt2020nc/bt2020/smpte2084)",
     {"range": "tv", "matrix": "bt2020nc", "primaries": "bt2020", "transfer": "smpte2084"}),
    ("yuvj420p(pc, bt470bg/unknown/unknown, progressive)", {"range": "pc", "matrix": "bt470bg"}),
    ("yuv420p(tv, progressive)", {"range": "tv"}),
    ("yuv420p(progressive)", {}),
    ("yuv420p(tv, bt470bg, top first, center)",
     {"range": "tv", "matrix": "bt470bg", "primaries": "bt470bg", "transfer": "gamma28", "chroma_location": "center"}),
])
def test_the_probe_reads_what_the_stream_states(printed: str, stated: dict[str, str]) -> None:
    info = _info(f"h264, {printed}, 640x360, 25 fps, 25 tbr, 1k tbn")
    assert dict(info.colour_tags) == stated


def test_hdr_side_data_is_kept() -> None:
    side = ("    Side data:\n"
            "      Content light level metadata: MaxCLL=1000, MaxFALL=400\n"
            "      Mastering display metadata: has_primaries:1 has_luminance:1 r(0.6800,0.3200) g(0.2650,0.6900) "
            "b(0.1500 0.0600) wp(0.3127, 0.3290) min_luminance=0.000100, max_luminance=1000.000000\n"
            "      DOVI configuration record: version: 1.0, profile: 8, level: 4, rpu flag: 1\n")
    info = _info(PQ, side)
    assert len(info.hdr_metadata) == 3
    assert info.hdr_metadata[0] == "Content light level metadata: MaxCLL=1000, MaxFALL=400"
    desc = _desc(PQ)
    assert desc.is_hdr and desc.dynamic_range == "PQ" and desc.bit_depth == 10 and desc.assumed == ()


@pytest.mark.parametrize(("size", "matrix", "primaries"), [
    ("1920x1080", "bt709", "bt709"), ("1280x720", "bt709", "bt709"), ("1280x534", "bt709", "bt709"),
    ("720x576", "bt470bg", "bt470bg"), ("720x480", "smpte170m", "smpte170m"), ("640x360", "smpte170m", "smpte170m"),
    ("1024x768", "bt709", "bt709"),
])
def test_untagged_inputs_are_assumed_by_size_as_players_do(size: str, matrix: str, primaries: str) -> None:
    desc = _desc(f"h264, yuv420p(progressive), {size}, 25 fps, 25 tbr, 1k tbn")
    assert (desc.matrix, desc.primaries, desc.range, desc.chroma_location) == (matrix, primaries, "tv", "left")
    assert set(desc.assumed) == {"range", "matrix", "primaries", "transfer", "chroma_location"}
    assert "*" in desc.text() and not desc.is_hdr


def test_assumptions_follow_what_is_stated() -> None:
    jpeg = _desc("mjpeg, yuvj420p(progressive), 640x480, 25 fps, 25 tbr, 1k tbn")
    assert (jpeg.range, jpeg.chroma_location) == ("pc", "center")
    only_matrix = _desc("h264, yuv420p(tv, bt470bg/unknown/unknown), 720x576, 25 fps, 25 tbr, 1k tbn")
    assert (only_matrix.primaries, only_matrix.transfer) == ("bt470bg", "smpte170m")
    assert set(only_matrix.assumed) == {"primaries", "transfer", "chroma_location"}
    pq_only = _desc("hevc, yuv420p10le(tv, unknown/unknown/smpte2084), 1280x720, 25 fps, 25 tbr, 1k tbn")
    assert (pq_only.matrix, pq_only.primaries, pq_only.is_hdr) == ("bt2020nc", "bt2020", True)
    full444 = _desc("h264, yuv444p10le(tv, bt709), 1280x720, 25 fps, 25 tbr, 1k tbn")
    assert full444.chroma_location is None and full444.bit_depth == 10


def _plan(ref: str, dis: str, **settings: object):  # type: ignore[no-untyped-def]
    return make_plan(_info(ref), _info(dis), Alignment(**settings))  # type: ignore[arg-type]


def test_same_description_converts_nothing_and_pins_the_format() -> None:
    plan = _plan(HD709, HD709)
    assert plan.summary == ()
    chain = plan.chain("distorted", "yuv420p")
    assert not any(f.startswith("zscale") for f in chain)
    assert "format=pix_fmts=yuv420p:color_spaces=bt709:color_ranges=tv" in chain
    assert plan.decisions["colour"]["conversion"] is None and plan.decisions["colour"]["validated"]


def test_untagged_against_tagged_of_the_same_meaning_converts_nothing() -> None:
    plan = _plan(HD709, UNTAGGED_HD)
    assert plan.decisions["colour"]["conversion"] is None
    # the assumption is stated on the frames, so ffmpeg cannot read "unspecified" as BT.601
    assert plan.chain("distorted", "yuv420p")[0].startswith("setparams=range=tv:colorspace=bt709")


@pytest.mark.parametrize(("ref", "dis", "differs"), [
    (HD709, SD601, ["matrix", "primaries"]),
    (HD709, FULL709, ["range"]),
    (FULL709, HD709, ["range"]),
    (HD709, "h264, yuv420p(tv, bt2020nc/bt2020/bt2020-10), 1280x720, 25 fps, 25 tbr, 1k tbn", ["matrix", "primaries"]),
    ("h264, yuv420p(tv, bt470bg), 720x576, 25 fps, 25 tbr, 1k tbn",
     "h264, yuv420p(tv, smpte170m/bt470bg/smpte170m), 720x576, 25 fps, 25 tbr, 1k tbn", []),
])
def test_the_distorted_is_converted_into_the_references_description(ref: str, dis: str, differs: list[str]) -> None:
    plan = _plan(ref, dis)
    conversion = plan.decisions["colour"]["conversion"]
    if not differs:
        assert conversion is None
        return
    assert conversion["differs_in"] == differs
    zscale = conversion["filter"]
    assert zscale in plan.chain("distorted", "yuv420p")
    r, d = _desc(ref), _desc(dis)
    for key, value in (("rin", d.range), ("min", d.matrix), ("pin", d.primaries), ("r", r.range), ("m", r.matrix),
                       ("p", r.primaries)):
        assert f"{key}={value}:" in zscale + ":"
    assert any(line.startswith("colour: distorted converted") for line in plan.summary)
    assert not any(f.startswith("zscale") for f in plan.chain("reference", "yuv420p"))


def test_chroma_siting_is_honoured_when_scaling() -> None:
    centre = "h264, yuv420p(tv, bt709, progressive, center), 640x360, 25 fps, 25 tbr, 1k tbn"
    plan = _plan(HD709, centre)
    scale = next(f for f in plan.chain("distorted", "yuv420p") if f.startswith("scale="))
    assert "in_chroma_loc=center:out_chroma_loc=left" in scale and "in_range=tv:out_range=tv" in scale
    assert plan.decisions["colour"]["chroma_siting"] == "center -> left when scaled"
    same = _plan(HD709, "h264, yuv420p(tv, bt709, progressive, left), 640x360, 25 fps, 25 tbr, 1k tbn")
    assert "in_chroma_loc=left:out_chroma_loc=left" in same.scale + same.colour.scale_options  # type: ignore[operator,union-attr]


def test_as_is_scores_code_values_and_says_so() -> None:
    plan = _plan(HD709, SD601, colour="as-is")
    chain = plan.chain("distorted", "yuv420p")
    assert not any(f.startswith("zscale") for f in chain)
    assert chain[0].startswith("setparams=range=tv:colorspace=bt709")  # relabelled: nothing for ffmpeg to convert
    assert plan.decisions["colour"]["relabelled"]
    assert plan.decisions["colour"]["mode"] == "as-is" and not plan.decisions["colour"]["validated"]
    assert any("--colour as-is" in line and "matrix" in line for line in plan.summary)
    assert any("--colour as-is" in line for line in _plan(HD709, HD709, colour="as-is").summary)


def test_hdr_against_sdr_is_refused_in_one_line_naming_both_transfers() -> None:
    with pytest.raises(BadInput) as caught:
        _plan(PQ, HD709)
    message = str(caught.value)
    assert "PQ (smpte2084)" in message and "SDR (bt709)" in message and "--tonemap" in message
    assert "\n" not in message
    with pytest.raises(BadInput, match=r"reference is SDR \(bt709\) and distorted HLG"):
        _plan(HD709, HLG)


def test_tone_mapping_is_named_recorded_and_a_proxy() -> None:
    plan = _plan(PQ, HD709, tonemap="mobius:param=0.3:desat=0")
    decided = plan.decisions["colour"]
    assert decided["proxy"] and not decided["validated"]
    assert decided["tonemap"]["operator"] == "mobius" and decided["tonemap"]["parameters"] == {"param": "0.3",
                                                                                              "desat": "0"}
    chain = ",".join(plan.chain("reference", "yuv420p"))
    assert "tonemap=tonemap=mobius:param=0.3:desat=0" in chain and "tin=smpte2084" in chain and "npl=100" in chain
    assert any("proxy" in line for line in plan.summary)
    assert "tonemap" not in ",".join(plan.chain("distorted", "yuv420p"))
    # the distorted HDR against an SDR reference: the distorted is mapped
    flipped = _plan(HD709, PQ, tonemap="hable")
    assert "tonemap=tonemap=hable" in ",".join(flipped.chain("distorted", "yuv420p"))
    # a smaller HDR distorted is tone-mapped at its size, then scaled as the SDR picture it now is
    small_pq = PQ.replace("1280x720", "640x360").replace(", left)", ", center)")
    scaled = _plan(HD709, small_pq, tonemap="hable")
    assert "in_chroma_loc=left:out_chroma_loc=left" in scaled.scale + scaled.colour.scale_options  # type: ignore[operator,union-attr]


@pytest.mark.parametrize("bad", ["drago", "hable:strength=2", "hable:desat=x", "hable:param"])
def test_unknown_tone_mapping_is_a_job_error(bad: str) -> None:
    with pytest.raises(InvalidJob) as caught:
        _job({"tonemap": bad})
    assert "alignment.tonemap" in "\n".join(caught.value.errors)


def test_colour_fields_are_checked_like_every_job_field() -> None:
    for field, bad in (("colour", "convert-all"), ("hdr_policy", "tonemap")):
        with pytest.raises(InvalidJob) as caught:
            _job({field: bad})
        assert f"alignment.{field}" in "\n".join(caught.value.errors)
    job = _job({"colour": "as-is", "hdr_policy": "pu21", "tonemap": "hable"})
    assert (job.alignment.colour, job.alignment.hdr_policy, job.alignment.tonemap) == ("as-is", "pu21", "hable")


def _job(alignment: dict[str, object]):  # type: ignore[no-untyped-def]
    job, _ = parse_job({"reference": {"uri": "/r.mkv"}, "distorted": {"uri": "/d.mkv"}, "alignment": alignment},
                       "test")
    return job


def test_the_colour_policy_is_in_the_cache_key() -> None:
    from vmafx_core.cache import make_key
    from vmafx_core.ffmpeg import find_ffmpeg

    def key(alignment: dict[str, object]) -> str | None:
        return make_key(_job(alignment), None, ["local:/r|size=1", "local:/d|size=2"], find_ffmpeg())

    keys = {key({}), key({"colour": "as-is"}), key({"hdr_policy": "pu21"}), key({"hdr_policy": "as-is"}),
            key({"tonemap": "hable"}), key({"tonemap": "hable:desat=0"})}
    assert len(keys) == 6 and None not in keys


def test_an_hdr_pair_needs_a_policy() -> None:
    with pytest.raises(BadInput) as caught:
        _plan(PQ, PQ)
    message = str(caught.value)
    assert all(choice in message for choice in ("--hdr-policy", "pu21", "hdr-models", "as-is")) and "\n" not in message
    with pytest.raises(BadInput, match="no HDR-VMAF models"):
        _plan(PQ, PQ, hdr_policy="hdr-models")
    with pytest.raises(BadInput, match="--model vmaf_hdr_v0.6.1"):  # found, but the job scores an SDR model
        make_plan(_info(PQ), _info(PQ), Alignment(hdr_policy="hdr-models"), hdr_models=("vmaf_hdr_v0.6.1",),
                  models=("vmaf_v0.6.1",))
    found = make_plan(_info(PQ), _info(PQ), Alignment(hdr_policy="hdr-models"), hdr_models=("vmaf_hdr_v0.6.1",),
                      models=("vmaf_hdr_v0.6.1",))
    assert found.decisions["colour"]["hdr_policy"] == "hdr-models"
    with pytest.raises(BadInput, match="two HDR transfers"):
        _plan(PQ, HLG, hdr_policy="pu21")


def test_hdr_policies_are_recorded_and_labelled() -> None:
    as_is = _plan(PQ, PQ, hdr_policy="as-is")
    assert not as_is.decisions["colour"]["validated"] and any("not validated" in s for s in as_is.summary)
    pu = _plan(HLG, HLG, hdr_policy="pu21")
    assert pu.decisions["colour"]["pu21"]["hlg_display_peak"] == 1000.0
    for role in ("reference", "distorted"):
        chain = pu.chain(role, "yuv420p10le")
        assert chain[-3].startswith("lutyuv=y=") and chain[-4] == "format=yuv420p10le"
    assert any("PU21" in line for line in pu.summary)


def test_pu21_formula_at_known_luminances() -> None:
    # hand values from the paper's banding_glare parameters: 100 cd/m2 (SDR white) is about 256
    assert colour.pu21(100.0) == pytest.approx(256.4, abs=0.2)
    assert colour.pu21(0.0) == colour.pu21(colour.PU21_L_MIN)
    assert colour.pu21(1e6) == colour.pu21(colour.PU21_L_MAX)
    assert colour.pu21(1000.0) > colour.pu21(100.0) > colour.pu21(1.0)
