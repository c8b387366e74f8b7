"""`vmafx models`: the libvmaf models this ffmpeg has, and what each is for (loaded only when asked)."""

from __future__ import annotations

import json

import click

from vmafx_core.clierrors import user_errors as _user_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.option("--ffmpeg", "ffmpeg_path", help="ffmpeg binary to ask (default: $VMAFX_FFMPEG, then the wheel's).")
def models(as_json: bool, ffmpeg_path: str | None) -> None:
    """List the libvmaf models built into ffmpeg: viewing condition, score range, whether each loads.

    The names are read from the ffmpeg binary and each is tried once (kept per binary, like the
    ffmpeg version). Choose one with `--model NAME`, parameters as `NAME:key=value`, several by
    repeating `--model`; a model file is given by its path.
    """
    from vmafx_core.ffmpeg import find_ffmpeg, require_libvmaf
    from vmafx_core.scorers.libvmaf.models import catalogue

    with _user_errors():
        path = find_ffmpeg(ffmpeg_path)
        info = require_libvmaf(path)
        rows = list(catalogue(path).values())
        if as_json:
            click.echo(json.dumps({"ffmpeg": info.version, "ffmpeg_path": path, "models": rows}, indent=2))
            return
        click.echo(f"libvmaf models in ffmpeg {info.version} ({path}):", err=True)
        for row in rows:
            low, high = row["score_range"]
            facts = [row["purpose"], f"scores {low}-{high}"]
            if row.get("frame_rate"):
                facts.append(row["frame_rate"])
            if row.get("precision_bits"):
                facts.append(f"scored at {row['precision_bits']}-bit")
            if row.get("transform"):
                facts.append("phone model: :enable_transform=true")
            if not row.get("loads"):
                facts.append(f"DOES NOT LOAD here: {row.get('error')}")
            click.echo(f"{row['name']:<28} {'; '.join(facts)}")
