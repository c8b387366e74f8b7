"""Colour conversions against hand-made truth: each cell of the matrix equals a bare libvmaf run.

Every cell makes a small reference and a distorted in a stated colour description (range,
matrix, primaries, transfer, bit depth, chroma siting, tagged or not, scaled or not). The truth
decodes both to raw, converts the distorted into the reference's description by hand with an
explicit `zscale` (written out here, in the test), scales it with `scale` where the sizes differ,
and scores raw against raw with a bare `ffmpeg -lavfi libvmaf`. vmafx must give the same pooled
mean and per-frame values (1e-4), say what it did in the result, and leave ffmpeg nothing to
convert implicitly (checked with `-v verbose` on the graph vmafx recorded).

PU21 and tone-mapping cells compute their truth outside ffmpeg where the formula is the point:
PU21 codes by numpy from colour-science's ST 2084 / HLG functions and the paper's formula.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from testkit.cli import run_vmafx
from testkit.media import ffmpeg_run
from vmafx_core.ffmpeg import find_ffmpeg

W, H, FRAMES = 160, 90, 10


@attrs.frozen
class Look:
    """A colour description as a clip is stored: what its code values mean and what its stream says."""

    range: str = "tv"
    matrix: str = "bt709"
    primaries: str = "bt709"
    transfer: str = "bt709"
    chroma: str = "left"
    pix_fmt: str = "yuv420p"
    tagged: bool = True
    size: tuple[int, int] = (W, H)
    #: ffv1 in Matroska keeps range, matrix, primaries and transfer but not the chroma siting; lossless
    #: x264 keeps range, matrix and siting (primaries and transfer then follow the matrix)
    codec: str = "ffv1"

    def zin(self) -> str:
        return f"rin={self.range}:min={self.matrix}:pin={self.primaries}:tin={self.transfer}:cin={self.chroma}"

    def zout(self) -> str:
        return f"r={self.range}:m={self.matrix}:p={self.primaries}:t={self.transfer}:c={self.chroma}"

    def tags(self) -> list[str]:
        codec = ["-c:v", "libx264", "-qp", "0"] if self.codec == "x264" else ["-c:v", "ffv1"]
        if not self.tagged:
            return codec
        return [*codec, "-color_range", self.range, "-colorspace", self.matrix, "-color_primaries", self.primaries,
                "-color_trc", self.transfer, "-chroma_sample_location", self.chroma]

    def untag(self) -> str:
        return ("" if self.tagged else
                ",setparams=colorspace=unknown:color_primaries=unknown:color_trc=unknown:chroma_location=unspecified")


SOURCE = Look(range="tv", matrix="bt709", primaries="bt709", transfer="bt709", chroma="left")


def make_clip(path: Path, look: Look, degrade: str = "null") -> Path:
    """testsrc2, softened (a camera, not a test card), degraded, then converted from BT.709 limited
    into `look` by an explicit zscale and stored lossless, tagged as `look` says."""
    w, h = look.size
    vf = (f"gblur=sigma=0.7,{degrade},zscale={SOURCE.zin()}:{look.zout()}:w={w}:h={h}:f=bicubic,"
          f"format={look.pix_fmt}{look.untag()}")
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25", "-frames:v", str(FRAMES), "-vf", vf,
               *look.tags(), str(path))
    probe = subprocess.run([find_ffmpeg(), "-hide_banner", "-v", "verbose", "-i", str(path)], capture_output=True,
                           text=True)
    stream = next(line for line in probe.stderr.splitlines() if "Video:" in line)
    if not look.tagged:  # the matrix, primaries and transfer are left for vmafx to assume
        assert not re.search(r"bt709|smpte170m|bt470bg|bt2020", stream), stream
    elif look.codec == "x264":  # the siting is what the cell is about: it must be in the stream
        assert look.chroma in stream, stream
    return path


def raw(path: Path, out: Path, vf: str, pix_fmt: str) -> Path:
    ffmpeg_run("-i", str(path), "-map", "0:v:0", "-vf", f"{vf},format=pix_fmts={pix_fmt}" if vf else
               f"format=pix_fmts={pix_fmt}", "-f", "rawvideo", "-pix_fmt", pix_fmt, str(out))
    return out


def bare(ref_yuv: Path, dis_yuv: Path, pix_fmt: str, log: Path, model: str = "version=vmaf_v0.6.1",
         size: tuple[int, int] = (W, H)) -> dict[str, Any]:
    spec = ["-f", "rawvideo", "-video_size", f"{size[0]}x{size[1]}", "-pixel_format", pix_fmt, "-framerate", "25"]
    ffmpeg_run(*spec, "-i", str(dis_yuv), *spec, "-i", str(ref_yuv), "-lavfi",
               f"[0:v][1:v]libvmaf=model={model}:log_fmt=json:log_path={log}:n_threads=2", "-f", "null", "-")
    data: dict[str, Any] = json.loads(log.read_text())
    return data


def vmafx(ref: Path, *dis: Path, flags: tuple[str, ...] = (), frames: Path | None = None) -> dict[str, Any]:
    out = run_vmafx("run", str(ref), *map(str, dis), *flags, "--json",
                    *(["--frames", str(frames)] if frames else []))
    assert out.code == 0, out.stderr
    result: dict[str, Any] = out.json()
    return result


def assert_equal(result: dict[str, Any], truth: dict[str, Any], frames: Path, metric: str = "vmaf") -> None:
    assert abs(result["metrics"][metric]["mean"] - truth["pooled_metrics"]["vmaf"]["mean"]) < 1e-4
    rows = json.loads(frames.read_text())
    assert len(rows) == len(truth["frames"]) == FRAMES
    for row, expected in zip(rows, truth["frames"], strict=True):
        assert abs(row[metric] - expected["metrics"]["vmaf"]) < 1e-4


_AUTO_SCALE_RE = re.compile(r"auto_scale\S* @ \S+\] w:\d+ h:\d+ fmt:(\S+) csp:(\S+) range:(\S+) .*-> w:\d+ h:\d+ "
                            r"fmt:(\S+) csp:(\S+) range:(\S+)")


def assert_nothing_implicit(result: dict[str, Any], ref: Path, dis: Path, folder: Path) -> None:
    """Run the recorded graph with -v verbose: no filter ffmpeg inserts may change matrix or range."""
    graph = result["provenance"]["filter_graph"].replace("<log>", str(folder / "verbose.json"))
    done = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "verbose", "-i", str(ref), "-i", str(dis),
                           "-filter_complex", graph, "-f", "null", "-"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "YUV color matrix differs" not in done.stderr
    for fmt_in, csp_in, range_in, _, csp_out, range_out in _AUTO_SCALE_RE.findall(done.stderr):
        assert (csp_in, range_in) == (csp_out, range_out) or fmt_in.startswith("gbr"), (csp_in, range_in, csp_out)


def _cell(tmp_path: Path, ref_look: Look, dis_look: Look, scored: str = "yuv420p") -> None:
    ref = make_clip(tmp_path / "ref.mkv", ref_look)
    dis = make_clip(tmp_path / "dis.mkv", dis_look, "noise=alls=5:allf=t:all_seed=7")
    # by hand: the distorted into the reference's description, then to the reference's size
    hand = f"zscale={dis_look.zin()}:{attrs.evolve(ref_look, chroma=dis_look.chroma).zout()}:f=bicubic"
    if dis_look.size != ref_look.size:
        hand += (f",scale={W}:{H}:flags=bicubic:in_chroma_loc={dis_look.chroma}:out_chroma_loc={ref_look.chroma}"
                 f":in_range={ref_look.range}:out_range={ref_look.range}")
    truth = bare(raw(ref, tmp_path / "ref.yuv", "", scored), raw(dis, tmp_path / "dis.yuv", hand, scored), scored,
                 tmp_path / "truth.json")
    frames = tmp_path / "frames.json"
    result = vmafx(ref, dis, frames=frames)
    assert_equal(result, truth, frames)
    colour = result["provenance"]["alignment"]["colour"]
    assert colour["conversion"] is not None and colour["mode"] == "convert"
    assert any(line.startswith("colour: distorted converted") for line in result["provenance"]["alignment"]["summary"])
    assert_nothing_implicit(result, ref, dis, tmp_path)


BT601 = Look(matrix="smpte170m", primaries="smpte170m", transfer="smpte170m")
BT601_PAL = Look(matrix="bt470bg", primaries="bt470bg", transfer="smpte170m")
BT2020 = Look(matrix="bt2020nc", primaries="bt2020", transfer="bt2020-10", pix_fmt="yuv420p10le")


@pytest.mark.parametrize(("ref_look", "dis_look", "scored"), [
    pytest.param(Look(), Look(range="pc"), "yuv420p", id="limited-ref-full-dis"),
    pytest.param(Look(range="pc"), Look(), "yuv420p", id="full-ref-limited-dis"),
    pytest.param(Look(), BT601, "yuv420p", id="709-ref-601-dis"),
    pytest.param(BT601_PAL, Look(), "yuv420p", id="601pal-ref-709-dis"),
    pytest.param(Look(), BT2020, "yuv420p", id="709-ref-2020-10bit-dis"),
    pytest.param(attrs.evolve(BT2020, range="pc"), Look(), "yuv420p10le", id="2020-full-10bit-ref-709-8bit-dis"),
    pytest.param(Look(), attrs.evolve(BT601, size=(96, 54)), "yuv420p", id="scaled-601-dis"),
    pytest.param(Look(codec="x264"), attrs.evolve(BT601, size=(96, 54), chroma="center", codec="x264"), "yuv420p",
                 id="scaled-centre-sited"),
    pytest.param(Look(chroma="center", codec="x264"), attrs.evolve(Look(range="pc"), size=(96, 54), codec="x264"),
                 "yuv420p", id="centre-ref-scaled-full-left-dis"),
    pytest.param(Look(codec="x264"), attrs.evolve(BT601, chroma="center", codec="x264"), "yuv420p",
                 id="unscaled-centre-sited-601"),
    # untagged: a 160x90 picture is assumed BT.601 525-line, limited, sited left
    pytest.param(attrs.evolve(BT601, tagged=False), Look(), "yuv420p", id="untagged-ref-tagged-709-dis"),
    pytest.param(Look(), attrs.evolve(BT601, tagged=False), "yuv420p", id="tagged-ref-untagged-dis"),
])
def test_each_cell_equals_its_hand_converted_truth(tmp_path: Path, ref_look: Look, dis_look: Look,
                                                   scored: str) -> None:
    _cell(tmp_path, ref_look, dis_look, scored)


def test_as_is_scores_the_code_values_as_stored_and_says_so(tmp_path: Path) -> None:
    ref = make_clip(tmp_path / "ref.mkv", Look())
    dis = make_clip(tmp_path / "dis.mkv", BT601, "noise=alls=5:allf=t:all_seed=7")
    truth = bare(raw(ref, tmp_path / "ref.yuv", "", "yuv420p"), raw(dis, tmp_path / "dis.yuv", "", "yuv420p"),
                 "yuv420p", tmp_path / "truth.json")
    frames = tmp_path / "frames.json"
    result = vmafx(ref, dis, flags=("--colour", "as-is"), frames=frames)
    assert_equal(result, truth, frames)
    colour = result["provenance"]["alignment"]["colour"]
    assert colour["mode"] == "as-is" and not colour["validated"]
    assert any("--colour as-is" in line for line in result["provenance"]["alignment"]["summary"])
    converted = vmafx(ref, dis)["metrics"]["vmaf"]["mean"]
    assert abs(converted - truth["pooled_metrics"]["vmaf"]["mean"]) > 0.5  # the conversion is not a no-op here
    assert_nothing_implicit(result, ref, dis, tmp_path)
    # the check can fail: a graph that leaves the two matrices to ffmpeg gets an implicit conversion
    naive = {"provenance": {"filter_graph": "[1:v:0]format=yuv420p[d];[0:v:0]format=yuv420p[r];[d][r]libvmaf"}}
    with pytest.raises(AssertionError):
        assert_nothing_implicit(naive, ref, dis, tmp_path)


def test_several_distorted_carry_the_same_decisions_as_separate_runs(tmp_path: Path) -> None:
    ref = make_clip(tmp_path / "ref.mkv", Look())
    d601 = make_clip(tmp_path / "d601.mkv", BT601, "noise=alls=5:allf=t:all_seed=7")
    dfull = make_clip(tmp_path / "dfull.mkv", attrs.evolve(Look(range="pc"), size=(96, 54)),
                      "noise=alls=5:allf=t:all_seed=9")
    grouped = run_vmafx("run", str(ref), str(d601), str(dfull), "--json")
    assert grouped.code == 0, grouped.stderr
    results = grouped.json()["results"] if "results" in grouped.json() else grouped.json()
    for one, dis in zip(results, (d601, dfull), strict=True):
        alone = vmafx(ref, dis)
        assert one["provenance"].get("group", {}).get("size") == 2
        assert one["provenance"]["alignment"]["colour"] == alone["provenance"]["alignment"]["colour"]
        assert abs(one["metrics"]["vmaf"]["mean"] - alone["metrics"]["vmaf"]["mean"]) < 1e-4


HDR_LOOK = {"PQ": Look(matrix="bt2020nc", primaries="bt2020", transfer="smpte2084", pix_fmt="yuv420p10le"),
            "HLG": Look(matrix="bt2020nc", primaries="bt2020", transfer="arib-std-b67", pix_fmt="yuv420p10le")}


def make_hdr(path: Path, look: Look, degrade: str = "null") -> Path:
    """An SDR picture placed in HDR as graded content is: SDR white at 100 cd/m2 (PQ) or the HLG curve."""
    vf = (f"gblur=sigma=0.7,{degrade},zscale={SOURCE.zin()}:{look.zout()}:npl=100:f=bicubic,format={look.pix_fmt}")
    ffmpeg_run("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25", "-frames:v", str(FRAMES), "-vf", vf,
               *look.tags(), str(path))
    return path


def test_hdr_against_sdr_is_refused_in_one_line(tmp_path: Path) -> None:
    ref = make_hdr(tmp_path / "pq.mkv", HDR_LOOK["PQ"])
    sdr = make_clip(tmp_path / "sdr.mkv", Look())
    out = run_vmafx("run", str(ref), str(sdr))
    assert out.code == 2
    line = out.stderr.strip()
    assert "\n" not in line and "PQ (smpte2084)" in line and "SDR (bt709)" in line and "--tonemap" in line
    out = run_vmafx("run", str(ref), str(ref))
    assert out.code == 2 and "--hdr-policy" in out.stderr and "\n" not in out.stderr.strip()
    out = run_vmafx("run", str(ref), str(ref), "--hdr-policy", "hdr-models")
    assert out.code == 2 and "no HDR-VMAF models" in out.stderr


def test_tone_mapped_proxy_equals_its_hand_built_truth(tmp_path: Path) -> None:
    pq = make_hdr(tmp_path / "pq.mkv", HDR_LOOK["PQ"])
    sdr = make_clip(tmp_path / "sdr.mkv", Look(), "noise=alls=5:allf=t:all_seed=7")
    lin = "rin=pc:min=gbr:pin=bt2020:tin=linear"
    hand = (f"zscale={HDR_LOOK['PQ'].zin()}:r=pc:m=gbr:p=bt2020:t=linear:npl=100:f=bicubic,format=gbrpf32le,"
            f"zscale={lin}:r=pc:m=gbr:p=bt709:t=linear:f=bicubic,tonemap=tonemap=hable:desat=0,"
            f"zscale=rin=pc:min=gbr:pin=bt709:tin=linear:{Look().zout()}:f=bicubic")
    truth = bare(raw(pq, tmp_path / "ref.yuv", hand, "yuv420p"), raw(sdr, tmp_path / "dis.yuv", "", "yuv420p"),
                 "yuv420p", tmp_path / "truth.json")
    frames = tmp_path / "frames.json"
    result = vmafx(pq, sdr, flags=("--tonemap", "hable:desat=0"), frames=frames)
    assert_equal(result, truth, frames)
    colour = result["provenance"]["alignment"]["colour"]
    assert colour["proxy"] and colour["tonemap"]["operator"] == "hable" and colour["tonemap"]["side"] == "reference"
    assert any("proxy" in line for line in result["provenance"]["alignment"]["summary"])
    assert_nothing_implicit(result, pq, sdr, tmp_path)


def pu21_by_hand(codes: np.ndarray, transfer: str) -> np.ndarray:
    """Limited-range 10-bit luma -> absolute luminance (colour-science) -> PU21 (the paper's formula,
    banding_glare) -> the PU21 range over 64..940, rounded."""
    import colour

    signal = np.clip((codes.astype(np.float64) - 64) / 876, 0, 1)
    if transfer == "smpte2084":
        luminance = colour.models.eotf_ST2084(signal)
    else:  # HLG on a 1000 cd/m2 display, system gamma 1.2 on luminance
        luminance = 1000 * (colour.models.oetf_inverse_ARIBSTDB67(signal) / 12) ** 1.2
    p = [0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204, 596.3148142]

    def pu(y: np.ndarray) -> np.ndarray:
        y = np.clip(y, 0.005, 10000)
        return np.maximum(p[6] * (((p[0] + p[1] * y ** p[3]) / (1 + p[2] * y ** p[3])) ** p[4] - p[5]), 0)

    lo, hi = pu(np.array(0.005)), pu(np.array(10000.0))
    return np.floor(64 + (pu(luminance) - lo) / (hi - lo) * 876 + 0.5).astype(np.uint16)


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_pu21_filter_equals_the_formula_on_every_code_value(tmp_path: Path, transfer: str) -> None:
    from vmafx_core.colour import describe, pu21_chain

    desc = describe({"range": "tv", "matrix": "bt2020nc", "primaries": "bt2020", "transfer": transfer},
                    "yuv420p10le", 32, 32)
    codes = np.arange(1024, dtype=np.uint16).reshape(32, 32)
    frame = np.concatenate([codes.ravel(), np.full(2 * 16 * 16, 512, dtype=np.uint16)])
    src, out = tmp_path / "codes.yuv", tmp_path / "pu21.yuv"
    src.write_bytes(frame.astype("<u2").tobytes())
    ffmpeg_run("-f", "rawvideo", "-video_size", "32x32", "-pixel_format", "yuv420p10le", "-i", str(src),
               "-vf", ",".join(pu21_chain(desc)), "-f", "rawvideo", "-pix_fmt", "yuv420p10le", str(out))
    got = np.frombuffer(out.read_bytes(), dtype="<u2")
    assert np.array_equal(got[:1024], pu21_by_hand(codes.ravel(), transfer))
    assert np.all(got[1024:] == 512)
    # known values: PQ code 64 is 0 cd/m2 (PU21's floor), SDR white (100 cd/m2, PQ code 509) near PU 256
    if transfer == "smpte2084":
        assert got[64] == 64 and got[940] == 940


@pytest.mark.parametrize("kind", ["PQ", "HLG"])
def test_an_hdr_pair_by_pu21_equals_bare_libvmaf_on_hand_encoded_luminance(tmp_path: Path, kind: str) -> None:
    look = HDR_LOOK[kind]
    ref = make_hdr(tmp_path / "ref.mkv", look)
    dis = make_hdr(tmp_path / "dis.mkv", look, "noise=alls=5:allf=t:all_seed=7")
    planes = []
    for name, clip in (("ref", ref), ("dis", dis)):
        stored = np.frombuffer(raw(clip, tmp_path / f"{name}.yuv", "", "yuv420p10le").read_bytes(), dtype="<u2")
        frames = stored.reshape(FRAMES, -1).copy()
        luma = W * H
        frames[:, :luma] = pu21_by_hand(frames[:, :luma], look.transfer)
        frames[:, luma:] = 512
        (tmp_path / f"{name}_pu.yuv").write_bytes(frames.astype("<u2").tobytes())
        planes.append(tmp_path / f"{name}_pu.yuv")
    truth = bare(planes[0], planes[1], "yuv420p10le", tmp_path / "truth.json")
    frames_file = tmp_path / "frames.json"
    result = vmafx(ref, dis, flags=("--hdr-policy", "pu21"), frames=frames_file)
    assert_equal(result, truth, frames_file)
    colour = result["provenance"]["alignment"]["colour"]
    assert colour["hdr_policy"] == "pu21" and not colour["validated"]
    assert colour["reference"]["dynamic_range"] == kind
    assert_nothing_implicit(result, ref, dis, tmp_path)


def test_an_hdr_pair_as_stored_equals_bare_libvmaf_and_is_labelled(tmp_path: Path) -> None:
    graded = make_hdr(tmp_path / "graded.mkv", HDR_LOOK["PQ"])
    ref = tmp_path / "ref.mkv"  # with HDR10 static metadata, as a master carries it
    ffmpeg_run("-mastering_display", "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)",
               "-content_light", "1000,400", "-i", str(graded), "-c:v", "ffv1", str(ref))
    dis = make_hdr(tmp_path / "dis.mkv", HDR_LOOK["PQ"], "noise=alls=5:allf=t:all_seed=7")
    truth = bare(raw(ref, tmp_path / "ref.yuv", "", "yuv420p10le"), raw(dis, tmp_path / "dis.yuv", "", "yuv420p10le"),
                 "yuv420p10le", tmp_path / "truth.json")
    frames = tmp_path / "frames.json"
    result = vmafx(ref, dis, flags=("--hdr-policy", "as-is"), frames=frames)
    assert_equal(result, truth, frames)
    assert any("not validated" in line for line in result["provenance"]["alignment"]["summary"])
    described = result["provenance"]["alignment"]["colour"]["reference"]
    assert described["transfer"] == "smpte2084" and described["dynamic_range"] == "PQ"
    assert any("MaxCLL=1000, MaxFALL=400" in line for line in described["hdr_metadata"])
    assert any(line.startswith("Mastering display metadata") and "max_luminance=1000" in line
               for line in described["hdr_metadata"])


def test_v1_models_get_the_encode_side_size_and_depth_for_cambi(tmp_path: Path) -> None:
    big, rung = (480, 270), (266, 150)  # the rung at CAMBI's smallest height, the reference's shape
    ref = make_clip(tmp_path / "ref.mkv", Look(size=big))
    dis = make_clip(tmp_path / "dis.mkv", Look(size=rung), "noise=alls=5:allf=t:all_seed=7")
    # scaled in the reference's 8-bit format, then taken to 10 bits as vmafx documents for v1 models
    hand = (f"scale={big[0]}:{big[1]}:flags=bicubic:in_chroma_loc=left:out_chroma_loc=left:in_range=tv:out_range=tv"
            ",format=yuv420p")
    ref_yuv = raw(ref, tmp_path / "ref.yuv", "format=yuv420p", "yuv420p10le")
    dis_yuv = raw(dis, tmp_path / "dis.yuv", hand, "yuv420p10le")
    model = "version=vmaf_v1.0.16_3d0h\\\\:cambi.enc_width=266\\\\:cambi.enc_height=150\\\\:cambi.enc_bitdepth=8"
    truth = bare(ref_yuv, dis_yuv, "yuv420p10le", tmp_path / "truth.json", model=model, size=big)
    plain = bare(ref_yuv, dis_yuv, "yuv420p10le", tmp_path / "plain.json", model="version=vmaf_v1.0.16_3d0h",
                 size=big)
    frames = tmp_path / "frames.json"
    result = vmafx(ref, dis, flags=("--model", "vmaf_v1.0.16_3d0h"), frames=frames)
    assert_equal(result, truth, frames)
    assert truth["frames"] != plain["frames"]  # the encode side changes what CAMBI sees
    assert_nothing_implicit(result, ref, dis, tmp_path)
    row = result["provenance"]["models"][0]
    assert row["cambi_encode_side"]["enc_width"] == 266 and row["cambi_encode_side"]["enc_bitdepth"] == 8
    assert row["cambi_encode_side"]["from"]["enc_height"] == "distorted stream"
    # an explicit model parameter wins, and says so
    given = vmafx(ref, dis, flags=("--model", "vmaf_v1.0.16_3d0h:cambi.enc_bitdepth=10"))
    assert given["provenance"]["models"][0]["cambi_encode_side"]["enc_bitdepth"] == 10
    assert given["provenance"]["models"][0]["cambi_encode_side"]["from"]["enc_bitdepth"] == "model parameter"
    # below CAMBI's range the size is not passed (libvmaf would refuse the model), and that is said
    tiny = make_clip(tmp_path / "tiny.mkv", Look(size=(96, 54)))
    small = vmafx(ref, tiny, flags=("--model", "vmaf_v1.0.16_3d0h"))
    assert "not passed" in small["provenance"]["models"][0]["cambi_encode_side"]["note"]


def test_an_encode_of_the_reference_means_what_the_reference_means(tmp_path: Path) -> None:
    # an SD-sized rung of an HD-described reference: the rung is not "assumed BT.601 by its size"
    ref = make_clip(tmp_path / "ref.mkv", Look())
    saved = tmp_path / "rung.mkv"
    out = run_vmafx("run", str(ref), "--encode", "libx264", "--crf", "30", "--encode-size", "96x54",
                    "--save-encode", str(saved), "--json")
    assert out.code == 0, out.stderr
    colour = out.json()["provenance"]["alignment"]["colour"]
    assert colour["conversion"] is None and colour["distorted"]["matrix"] == "bt709"
    assert colour["distorted"]["described_by"].startswith("the reference")
    again = vmafx(ref, saved)  # the saved encode, probed as a file, means the same and scores the same
    assert again["provenance"]["alignment"]["colour"]["conversion"] is None
    assert abs(again["metrics"]["vmaf"]["mean"] - out.json()["metrics"]["vmaf"]["mean"]) < 1e-4


def test_the_summary_and_the_report_show_the_colour(tmp_path: Path) -> None:
    from vmafx_core.report.render import colour_text

    ref = make_clip(tmp_path / "ref.mkv", Look())
    dis = make_clip(tmp_path / "dis.mkv", attrs.evolve(BT601, tagged=False))
    out = run_vmafx("run", str(ref), str(dis), "-o", str(tmp_path / "r.json"))
    assert out.code == 0, out.stderr
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("colour "))
    assert "distorted converted" in line and "smpte170m*" in line
    text = colour_text(json.loads((tmp_path / "r.json").read_text())["provenance"])
    assert text.startswith("reference SDR tv bt709 bt709 bt709 8-bit; distorted SDR tv smpte170m* ")
    assert "* assumed" in text
    plain = run_vmafx("run", str(ref), str(ref))
    assert plain.code == 0 and not any(ln.startswith("colour ") for ln in plain.stderr.splitlines())


def test_ladder_rungs_mean_what_the_reference_means(tmp_path: Path) -> None:
    ref = make_clip(tmp_path / "ref.mkv", Look())  # BT.709 stated; a 96x54 rung alone would be assumed BT.601
    job = tmp_path / "ladder.toml"
    job.write_text(f'[reference]\nuri = {json.dumps(str(ref))}\n'
                   '[[ladder]]\nencoder = "libx264"\ncrf = 30\nsize = "96x54"\n'
                   '[[ladder]]\nencoder = "libx264"\ncrf = 20\n')
    out = run_vmafx("run", "--job", str(job), "--json")
    assert out.code == 0, out.stderr
    rungs = out.json()["rungs"]
    assert len(rungs) == 2
    for rung in rungs:
        colour = rung["provenance"]["alignment"]["colour"]
        assert colour["conversion"] is None and colour["distorted"]["matrix"] == "bt709"
        assert colour["distorted"]["described_by"].startswith("the reference")


def test_a_batch_carries_each_jobs_colour_policy_and_refusal(tmp_path: Path) -> None:
    ref = make_clip(tmp_path / "ref.mkv", Look())
    d601 = make_clip(tmp_path / "d601.mkv", BT601, "noise=alls=5:allf=t:all_seed=7")
    pq = make_hdr(tmp_path / "pq.mkv", HDR_LOOK["PQ"])
    lines = [{"id": "convert", "reference": {"uri": str(ref)}, "distorted": {"uri": str(d601)}},
             {"id": "as-is", "reference": {"uri": str(ref)}, "distorted": {"uri": str(d601)},
              "alignment": {"colour": "as-is"}},
             {"id": "hdr-sdr", "reference": {"uri": str(pq)}, "distorted": {"uri": str(ref)}}]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    done = run_vmafx("batch", str(jobs), "--out", str(out), env={"VMAFX_RESULT_CACHE": "off"})
    assert "Traceback" not in done.stderr
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    alone = vmafx(ref, d601)
    assert results["convert"]["metrics"]["vmaf"]["mean"] == pytest.approx(alone["metrics"]["vmaf"]["mean"], abs=1e-4)
    assert results["convert"]["provenance"]["alignment"]["colour"] == alone["provenance"]["alignment"]["colour"]
    assert results["as-is"]["provenance"]["alignment"]["colour"]["mode"] == "as-is"
    assert results["hdr-sdr"]["status"] == "failed" and results["hdr-sdr"]["exit_code"] == 2
    assert "--tonemap" in results["hdr-sdr"]["error"]
