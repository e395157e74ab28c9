"""The file tree of one message (attachments and everything unpacked from them) and the limits on unpacking."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import IO, Any

from mailmoat.attach.sniff import mime_of, sniff

CHUNK = 64 * 1024
# Below this many expanded bytes a high ratio is normal (small text compresses very well).
RATIO_FLOOR = 1024 * 1024


@dataclass
class ScannedFile:
    """One attachment, archive member or embedded object; `data` is None when it could not be read."""

    name: str
    data: bytes | None
    location: str  # human-readable chain: "invoice.zip > docs/a.docm"
    part_path: str  # MIME part of the top-level attachment
    depth: int = 0  # 0 = the attachment itself
    declared_type: str = ""  # Content-Type of a top-level attachment
    container: str = ""  # true ext of the parent ("" for attachments)
    ext: str = ""  # true extension from the bytes
    mime: str = ""
    size: int = 0
    sha256: str = ""
    encrypted: bool = False  # this member was encrypted in its archive
    decrypted: bool = False  # read with a password (no outside scanner could have opened it)
    reports: dict[str, Any] = field(default_factory=dict)  # engine name -> report

    def __post_init__(self) -> None:
        if self.data is not None:
            self.size = len(self.data)
            if not self.sha256:
                self.sha256 = hashlib.sha256(self.data).hexdigest()
            if not self.ext:
                self.ext = sniff(self.data)
        if not self.mime:
            self.mime = mime_of(self.ext)


@dataclass
class Event:
    """Something the unpacker met: a bomb, a limit, an encrypted or unreadable archive."""

    kind: str  # bomb, too_deep, too_many, encrypted, decrypted, corrupt, unsupported, incomplete
    location: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class LimitExceeded(Exception):
    """Unpacking stopped at a limit; `kind` is the Event kind to record."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class Limits:
    max_depth: int = 4
    max_members: int = 1000  # across the whole message
    max_total: int = 200 * 1024 * 1024  # expanded bytes across the whole message
    max_member: int = 50 * 1024 * 1024
    max_ratio: float = 200.0
    deadline: float = float("inf")  # time.monotonic() value


@dataclass
class Budget:
    """What is left of the limits while one message is unpacked (shared by every container in it)."""

    limits: Limits
    members: int = 0
    expanded: int = 0

    def check_time(self) -> None:
        if time.monotonic() > self.limits.deadline:
            raise LimitExceeded("incomplete", "time budget for unpacking ran out")

    def take_member(self) -> None:
        if self.members >= self.limits.max_members:
            raise LimitExceeded("too_many", f"more than {self.limits.max_members} archive members")
        self.members += 1

    def read(self, stream: IO[bytes], packed_size: int, name: str) -> bytes:
        """Read a member's stream with hard caps: a bomb stops here, after at most one chunk too many."""
        out = bytearray()
        lim = self.limits
        packed = max(packed_size, 1)
        while True:
            self.check_time()
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            out += chunk
            n = len(out)
            if n > lim.max_member:
                raise LimitExceeded("bomb", f"{name}: expands past {lim.max_member} bytes")
            if self.expanded + n > lim.max_total:
                raise LimitExceeded("bomb", f"{name}: archive contents exceed {lim.max_total} bytes in total")
            if n > RATIO_FLOOR and n / packed > lim.max_ratio:
                raise LimitExceeded("bomb", f"{name}: compression ratio above {lim.max_ratio:g} ({n}/{packed_size} bytes)")
        self.expanded += len(out)
        return bytes(out)

    def admit(self, size: int, packed_size: int, name: str) -> None:
        """Refuse a member whose declared size already breaks a limit (formats whose decoders honour it)."""
        lim = self.limits
        if size > lim.max_member:
            raise LimitExceeded("bomb", f"{name}: declares {size} bytes (limit {lim.max_member})")
        if self.expanded + size > lim.max_total:
            raise LimitExceeded("bomb", f"{name}: archive contents exceed {lim.max_total} bytes in total")
        if size > RATIO_FLOOR and size / max(packed_size, 1) > lim.max_ratio:
            raise LimitExceeded("bomb", f"{name}: compression ratio above {lim.max_ratio:g} ({size}/{packed_size} bytes)")
