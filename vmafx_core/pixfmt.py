"""Raw YUV pixel formats vmafx accepts, and their frame sizes in bytes."""

from __future__ import annotations

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
