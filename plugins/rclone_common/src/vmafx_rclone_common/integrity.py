"""What rclone says about the integrity of what it served: `PreparedInput.integrity` for both backends.

rclone compares an object's size (and, where it checks them, its hashes) with what it listed, and
logs a mismatch as an ERROR while ffmpeg is reading: the bytes already served are then not the
object's. ffmpeg may decode them without complaint, so the core asks after scoring, and a line
here fails the job with exit 4 instead of a wrong score with exit 0.
"""

from __future__ import annotations

import re
import time

from vmafx_rclone_common.launch import RcloneProcess

#: rclone's words for "not what is stored": a size or hash mismatch, a source changed mid-read, or
#: an object that ended before the size rclone listed (a read's final "unexpected EOF", after its
#: low-level retries: those retry lines alone are not a verdict)
_MISMATCH = re.compile(r"corrupted on transfer|sizes? differ|hash(?:es)? differ|md5 differ|sha1 differ|"
                       r"source file is being updated|size changed from|Read error: unexpected EOF",
                       re.IGNORECASE)
_PREFIX = re.compile(r"^\S+ \S+ (?:ERROR|NOTICE|INFO)\s*:\s*")


def served_mismatch(process: RcloneProcess, settle: float = 0.05) -> str | None:
    """The first mismatch rclone logged (without its timestamp), or None.

    rclone logs a failed read as it closes the response, and its stderr is read by a thread: a
    live rclone gets `settle` seconds for that line to arrive, since ffmpeg may have ended at once.
    """
    if settle > 0 and process.alive():
        time.sleep(settle)
    for line in process.tail().splitlines():
        if _MISMATCH.search(line) and "low level retry" not in line:
            return "rclone: " + _PREFIX.sub("", line.strip())[:300]
    return None
