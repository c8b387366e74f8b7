"""One member of a zip archive: where its bytes are, reading any range of them, and checking them.

A stored member (the usual case for video: compressing it again gains nothing) is a plain byte
range of the archive, read with `os.pread` at any offset, from any thread. A compressed member is
read through `zipfile`, which inflates from the start to reach an offset: correct, slower to seek.

Every byte served passes through `Member.read`, so the member's CRC-32 is computed over what was
actually served while ffmpeg reads it from the start (one pass for a faststart MP4); what was not
read in order is read once more at the end. A mismatch with the CRC the archive's directory holds
is what `PreparedInput.integrity` reports.
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
import zlib

from vmafx_core.errors import BadInput

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20


def split_uri(uri: str) -> tuple[str, str]:
    """`zip:///data/set.zip!/dir/ref.mp4` -> ("/data/set.zip", "dir/ref.mp4"); BadInput if it is not one."""
    rest = uri[len("zip://"):] if uri.lower().startswith("zip://") else ""
    archive, sep, member = rest.partition("!/")
    if not archive.startswith("/"):
        raise BadInput(f"{uri}: expected zip:///ABSOLUTE/PATH/archive.zip!/member (three slashes)")
    if not sep or not member or member.endswith("/"):
        raise BadInput(f"{uri}: name a member after '!/', e.g. zip://{archive}!/ref.mp4")
    if any(part in ("", ".", "..") for part in member.split("/")):
        raise BadInput(f"{uri}: member names with '..', '.' or empty segments are not allowed")
    return archive, member


class Member:
    """An opened member: its size, its bytes by offset, and whether what was served matches its CRC."""

    def __init__(self, uri: str, role: str) -> None:
        self.uri = uri
        self.archive, self.name = split_uri(uri)
        subject = f"{role} {uri}"
        if not os.path.exists(self.archive):
            raise BadInput(f"{subject}: no such archive {self.archive}")
        try:
            with zipfile.ZipFile(self.archive) as zf:
                self.info = zf.getinfo(self.name)
        except zipfile.BadZipFile:
            raise BadInput(f"{subject}: {self.archive} is not a zip archive (or its directory is damaged)") from None
        except KeyError:
            raise BadInput(f"{subject}: the archive has no member {self.name!r}") from None
        except OSError as exc:
            raise BadInput(f"{subject}: cannot read {self.archive} ({exc.strerror})") from None
        if self.info.is_dir():
            raise BadInput(f"{subject}: is a folder of the archive, not a video file")
        if self.info.flag_bits & 0x1:
            raise BadInput(f"{subject}: the member is encrypted; vmafx-zip reads unencrypted members only")
        self.size = self.info.file_size
        self._fd = os.open(self.archive, os.O_RDONLY | os.O_CLOEXEC)
        self._offset: int | None = None  # where a stored member's bytes start in the archive
        if self.info.compress_type == zipfile.ZIP_STORED:
            header = os.pread(self._fd, _LOCAL_HEADER.size, self.info.header_offset)
            fields = _LOCAL_HEADER.unpack(header) if len(header) == _LOCAL_HEADER.size else None
            if fields is None or fields[0] != _LOCAL_MAGIC:
                self.close()
                raise BadInput(f"{subject}: the member's local header is damaged")
            self._offset = self.info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
        self._lock = threading.Lock()
        self._crc = 0
        self._upto = 0  # bytes 0.._upto were served in order and are in _crc
        self._problems: list[str] = []

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` of the member (fewer only at its end)."""
        length = max(0, min(length, self.size - offset))
        try:
            data = self._read(offset, length)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            self._problem(f"reading it failed: {exc}")
            raise
        if len(data) != length:
            self._problem(f"the archive ends {length - len(data)} bytes before the member does")
        with self._lock:
            if offset <= self._upto < offset + len(data):
                self._crc = zlib.crc32(data[self._upto - offset:], self._crc)
                self._upto = offset + len(data)
        return data

    def _read(self, offset: int, length: int) -> bytes:
        if self._offset is not None:
            # closed when the job's storage was released: the check after that opens it again
            fd = self._fd if self._fd >= 0 else os.open(self.archive, os.O_RDONLY | os.O_CLOEXEC)
            parts, done = [], 0
            try:
                while done < length:
                    part = os.pread(fd, length - done, self._offset + offset + done)
                    if not part:
                        break
                    parts.append(part)
                    done += len(part)
            finally:
                if fd != self._fd:
                    os.close(fd)
            return b"".join(parts)
        with zipfile.ZipFile(self.archive) as zf, zf.open(self.info) as stream:
            stream.seek(offset)
            return stream.read(length)

    def _problem(self, text: str) -> None:
        with self._lock:
            if text not in self._problems:
                self._problems.append(text)

    def integrity(self) -> str | None:
        """None when the bytes served are the member's stored bytes (CRC-32 as the archive says), else why not.

        What ffmpeg did not read in order from the start is read now, so every byte is checked once.
        """
        try:
            while True:
                with self._lock:
                    upto = self._upto
                if upto >= self.size:
                    break
                self.read(upto, _CHUNK)
                with self._lock:
                    if self._upto == upto:  # the archive ended: read() said so
                        break
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
            pass  # recorded by read()
        with self._lock:
            if self._problems:
                return f"member {self.name} of {self.archive}: {'; '.join(self._problems)}"
            if self._crc != self.info.CRC:
                return (f"member {self.name} of {self.archive} fails its CRC-32 (the archive says "
                        f"{self.info.CRC:08x}, the bytes read give {self._crc:08x}): the archive is damaged")
        return None

    def identity(self) -> str | None:
        """The archive file's identity and the member's name, CRC and size: a rewrite changes one of them."""
        from vmafx_core.cache import local_identity

        archive = local_identity(self.archive)
        return None if archive is None else f"zip:{archive}!{self.name}:{self.info.CRC:08x}:{self.size}"

    def close(self) -> None:
        """Close the archive; a second call does nothing."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
