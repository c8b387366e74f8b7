"""The libvmaf scorer's filter graph, built in process from probes and a plan (no ffmpeg run)."""

from __future__ import annotations

import attrs

from vmafx_core.alignment import make_plan
from vmafx_core.ffmpeg import StreamInfo, parse_stream_info
from vmafx_core.job import Alignment, converter
from vmafx_core.scorers.libvmaf import SCORER, LibvmafOptions, build_filter_graph, cache_facts, scoring_groups


def _info(stream: str) -> StreamInfo:
    info = parse_stream_info(f"  Duration: 00:00:02.00, start: 0.000000, bitrate: 100 kb/s\n"
                             f"  Stream #0:0: Video: {stream}\n")
    assert info is not None
    return info


REF = _info("h264, yuv420p(progressive), 320x180, 25 fps, 25 tbr, 12800 tbn")


def _options(**scorer: object) -> LibvmafOptions:
    options: LibvmafOptions = converter.structure(scorer, LibvmafOptions)
    return options


def test_one_model_is_one_libvmaf_on_both_chains() -> None:
    plan = make_plan(REF, REF, Alignment())
    graph, outputs = build_filter_graph(REF, REF, _options(n_threads=2), plan, "/t/vmaf.json")
    assert graph.count("libvmaf=") == 1 and "log_path=/t/vmaf.json" in graph and "n_threads=2" in graph
    assert graph.startswith("[1:v:0]") and "[0:v:0]" in graph and "split" not in graph
    assert outputs == ["-f", "null", "-"]


def test_v1_and_v0_models_on_8_bit_input_are_two_instances_at_two_precisions() -> None:
    options = _options(model=["vmaf_v0.6.1", "vmaf_v1.0.16_3d0h"], features=["psnr"])
    groups = scoring_groups(options, "yuv420p")
    assert [fmt for fmt, _, _ in groups] == [None, "yuv420p10le"]
    assert [with_features for _, _, with_features in groups] == [True, False]  # the features go with the first
    graph, outputs = build_filter_graph(REF, REF, options, make_plan(REF, REF, Alignment()), "/t/vmaf.json")
    assert graph.count("libvmaf=") == 2 and graph.count("format=yuv420p10le") == 2  # each side's copy converted
    first, second = (part for part in graph.split(";") if "libvmaf=" in part)
    assert "feature=name=psnr" in first and "feature" not in second and "log_path=/t/vmaf.1.json" in second
    assert outputs.count("-map") == 2


def test_a_plan_that_changes_counts_adds_counting_outputs() -> None:
    fast = attrs.evolve(REF, fps=50.0, tbr=50.0)
    plan = make_plan(fast, REF, Alignment(fps="distorted"))  # type: ignore[arg-type]
    assert plan.changes_counts
    graph, outputs = build_filter_graph(fast, REF, _options(), plan, "/t/vmaf.json")
    assert "shortest=1" in graph and "[ref_count]" in graph and "[dis_count]" in graph
    assert outputs.count("-map") == 3  # scored, and one counting output per side


def test_the_cache_facts_resolve_all_cores_and_are_none_for_an_unreadable_model_file() -> None:
    facts = cache_facts(_options(n_threads=0))
    assert facts is not None and facts["n_threads"] >= 1 and facts["model_files"] == []
    assert cache_facts(_options(model="/no/such/model.json")) is None
    assert SCORER.cache_facts is cache_facts and SCORER.threads_option == "n_threads"
    assert SCORER.summary_metric is not None and SCORER.summary_metric("vmaf")
    assert not SCORER.summary_metric("integer_adm2")
