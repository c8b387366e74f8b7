"""Raw YUV pixel formats vmafx accepts, and their frame sizes in bytes."""

from __future__ import annotations

import re
from collections.abc import Collection

#: pixel format -> (bytes per sample, chroma width divisor, chroma height divisor)
RAW_PIX_FMTS: dict[str, tuple[int, int, int]] = {
    "yuv420p": (1, 2, 2),
    "yuv422p": (1, 2, 1),
    "yuv444p": (1, 1, 1),
    "yuv420p10le": (2, 2, 2),
    "yuv422p10le": (2, 2, 1),
    "yuv444p10le": (2, 1, 1),
    "yuv420p12le": (2, 2, 2),
    "yuv422p12le": (2, 2, 1),
    "yuv444p12le": (2, 1, 1),
}


def frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    """Bytes of one frame of planar YUV in `pix_fmt` at `width`x`height`."""
    sample, cw, ch = RAW_PIX_FMTS[pix_fmt]
    chroma = (-(-width // cw)) * (-(-height // ch))
    return sample * (width * height + 2 * chroma)


#: chroma layouts by name stem, for formats whose name does not spell "420"/"422"/"444"
_CHROMA_OF = {"nv12": "420", "nv21": "420", "p010": "420", "p012": "420", "p016": "420",
              "nv16": "422", "nv20": "422", "p210": "422", "p212": "422", "p216": "422", "yuyv422": "422",
              "uyvy422": "422", "yvyu422": "422", "y210": "422", "y212": "422", "v210": "422",
              "nv24": "444", "nv42": "444", "p410": "444", "p412": "444", "p416": "444", "xv30": "444",
              "xv36": "444", "xv48": "444", "vuya": "444", "vuyx": "444", "ayuv": "444", "v30x": "444"}
#: bit depths by name stem where the digits in the name are not the depth (nv12 is 8 bit)
_DEPTH_OF = {"nv12": 8, "nv21": 8, "nv16": 8, "nv24": 8, "nv42": 8, "nv20": 10, "v210": 10, "y210": 10,
             "y212": 12, "xv30": 10, "xv36": 12, "xv48": 16, "vuya": 8, "vuyx": 8, "ayuv": 8, "v30x": 10,
             "rgb48": 16, "bgr48": 16, "rgba64": 16, "bgra64": 16, "x2rgb10": 10, "x2bgr10": 10}


def _stem(pix_fmt: str) -> str:
    return re.sub(r"(le|be)$", "", pix_fmt)


def chroma_of(pix_fmt: str) -> str:
    """"420", "422" or "444": how a decoded picture's chroma is sampled (RGB is full, grey scores
    as 4:2:0 with neutral chroma), read from ffmpeg's pixel format name."""
    stem = _stem(pix_fmt)
    if stem in _CHROMA_OF:
        return _CHROMA_OF[stem]
    if stem.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr")):
        return "444"
    for layout in ("444", "422"):
        if layout in stem:
            return layout
    return "420"


def depth_of(pix_fmt: str) -> int:
    """Bits per sample of ffmpeg's pixel format `pix_fmt`, read from its name (floats count as 16)."""
    stem = _stem(pix_fmt)
    if stem in _DEPTH_OF:
        return _DEPTH_OF[stem]
    if stem.endswith(("f32", "f16")):
        return 16
    semi = re.fullmatch(r"p[0-9]([0-9]{2})", stem)  # p010, p216, p412: the last two digits
    if semi:
        return int(semi.group(1))
    trailing = re.search(r"(?:p|gray|gbrap|gbrp|a)(9|10|12|14|16)$", stem)
    return int(trailing.group(1)) if trailing else 8


def scoring_format(pix_fmt: str, supported: Collection[str]) -> str:
    """The planar YUV format, of those a scorer takes (`supported`), to score a picture decoded as
    `pix_fmt` in: its chroma layout, at the smallest depth not below its own (else the deepest
    there is), so no bit of the source is dropped where the scorer can take it. yuvj (full range)
    maps to the yuv format of the same layout and depth; a layout the scorer lacks falls back to
    4:2:0."""
    depth = depth_of(pix_fmt)

    def layout(chroma: str) -> list[tuple[int, str]]:
        return sorted((depth_of(f), f) for f in supported if f.startswith(f"yuv{chroma}p"))

    candidates = layout(chroma_of(pix_fmt)) or layout("420")
    if not candidates:
        raise ValueError(f"no planar YUV format among {sorted(supported)}")
    at_least = [f for d, f in candidates if d >= depth]
    return at_least[0] if at_least else candidates[-1][1]
