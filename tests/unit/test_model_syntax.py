"""The model and feature syntax: what parses, what each error says, and what a name tells."""

from __future__ import annotations

import pytest

from vmafx_core.scorers.libvmaf.features import parse_feature
from vmafx_core.scorers.libvmaf.models import ModelChoice, describe, metric_names, parse_model, parse_models


def test_model_string_and_table_are_the_same_model() -> None:
    text = parse_model("vmaf_v0.6.1:enable_transform=true:metric=phone")
    table = parse_model({"name": "vmaf_v0.6.1", "enable_transform": True, "metric": "phone"})
    assert text == table == ModelChoice("vmaf_v0.6.1", enable_transform=True, metric="phone")
    assert parse_model(text.spec()) == text
    assert text.filter_value("phone") == "version=vmaf_v0.6.1\\\\:enable_transform=true\\\\:name=phone"


@pytest.mark.parametrize(("value", "message"), [
    ("vmaf_v0.6.1:enable_transform", "must be key=value"),
    ("vmaf_v0.6.1:enable_transform=maybe", "must be true or false"),
    ("vmaf_v0.6.1:phone=true", "unknown model parameter 'phone'"),
    ("vmaf_v1.0.16_3d0h:cambi.enc_bitdepth=eight", "positive integer"),
    ({"enable_transform": True}, "needs name"),
    ("models/x;y.json", "must not contain ;"),
])
def test_bad_models_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model(value)


def test_metric_names_one_model_keeps_vmaf_several_get_their_names() -> None:
    assert metric_names(parse_models("vmaf_v0.6.1neg")) == ["vmaf"]
    assert metric_names(parse_models(["vmaf_v0.6.1", "vmaf_v0.6.1:enable_transform=true", "/m/custom.json"])) == [
        "vmaf_v0.6.1", "vmaf_v0.6.1_phone", "vmaf_custom"]
    with pytest.raises(ValueError, match="same metric"):
        parse_models(["vmaf_v0.6.1", "vmaf_v0.6.1"])


def test_feature_options_are_checked() -> None:
    assert parse_feature("cambi:full_ref=true").filter_value() == "name=cambi\\\\:full_ref=true"
    assert parse_feature({"name": "psnr", "enable_chroma": False}).spec() == "psnr:enable_chroma=false"
    with pytest.raises(ValueError, match="feature ciede has no option 'x'"):
        parse_feature("ciede:x=1")
    with pytest.raises(ValueError, match="unknown feature 'ssim'"):
        parse_feature("ssim")


def test_what_a_name_tells() -> None:
    uhd3 = describe("vmaf_v1.0.16_hfr_3d0h_2160")
    assert (uhd3["display"], uhd3["viewing_distance"], uhd3["score_range"]) == ("2160p", "3H", [0, 110])
    assert "high frame rate" in uhd3["frame_rate"] and uhd3["precision_bits"] == 10
    assert describe("vmaf_v1.0.16_1d5h_2160")["viewing_distance"] == "1.5H"
    assert describe("vmaf_4k_v0.6.1neg")["viewing_distance"] == "1.5H"
    assert "bootstrap" in describe("vmaf_b_v0.6.3")["purpose"]
