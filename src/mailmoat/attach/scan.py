"""The one recursive file scanner: unpacks every attachment within limits and runs the document engines once.

Analyzers share its result (one expansion per message, cached), so a macro document in a zip in a zip
is seen by the Office analyzer, and an executable inside an ISO by the file-type analyzer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

from mailmoat.attach import htmlsvg, office, pdf
from mailmoat.attach.archives import EXPANDABLE, UNOPENED, Unpacker, announced_passwords
from mailmoat.attach.files import Budget, Event, LimitExceeded, Limits, ScannedFile
from mailmoat.attach.sniff import OFFICE_EXTS, engine_ext
from mailmoat.config import AttachmentSettings
from mailmoat.model import Message

log = logging.getLogger(__name__)

# Leave the analyzers this much of their budget to turn reports into findings.
DEADLINE_MARGIN = 1.0


@dataclass
class Expansion:
    """Every file of one message (attachments first, then what was unpacked from them) and unpacking events."""

    files: list[ScannedFile] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def complete(self) -> bool:
        return not any(e.kind in ("incomplete", "too_many") for e in self.events)


def limits_from(settings: AttachmentSettings, deadline: float = float("inf")) -> Limits:
    return Limits(
        max_depth=settings.archive_max_depth,
        max_members=settings.archive_max_members,
        max_total=settings.archive_max_total,
        max_member=settings.archive_max_member,
        max_ratio=settings.archive_max_ratio,
        deadline=deadline,
    )


class _Walker:
    def __init__(self, limits: Limits, passwords: list[str]) -> None:
        self.budget = Budget(limits)
        self.passwords = passwords
        self.out = Expansion(passwords=passwords)
        self.stopped = ""  # kind of the limit that stopped unpacking

    def walk(self, f: ScannedFile) -> None:
        self.out.files.append(f)
        if f.data is None or self.stopped == "incomplete":
            return
        try:
            self.budget.check_time()
            try:
                children = self._inspect(f)
            except LimitExceeded:
                raise
            except Exception as exc:  # the engines catch their own errors; this is the last line of defence
                log.warning("inspecting %s failed: %s", f.location, exc)
                children = []
            if f.ext in EXPANDABLE and not self.stopped:
                if f.depth >= self.budget.limits.max_depth:
                    self.out.events.append(Event("too_deep", f.location, f"archive nested deeper than {self.budget.limits.max_depth} levels"))
                else:
                    self._unpack(f)
            elif f.ext in UNOPENED:  # say so rather than pass it as an archive with nothing inside
                detail = f"{f.ext.upper()} archives are not unpacked here; contents not inspected"
                self.out.events.append(Event("unsupported", f.location, detail))
            for name, data in children:
                self._child(f, name, data, embedded=True)
        except LimitExceeded as exc:
            self._stop(exc, f.location)

    def _stop(self, exc: LimitExceeded, location: str) -> None:
        if not any(e.kind == exc.kind and e.detail == exc.detail for e in self.out.events):
            self.out.events.append(Event(exc.kind, location, exc.detail))
        if exc.kind in ("incomplete", "too_many") or "in total" in exc.detail:
            self.stopped = exc.kind

    def _inspect(self, f: ScannedFile) -> list[tuple[str, bytes]]:
        assert f.data is not None
        ext = f.ext
        if ext in OFFICE_EXTS:
            rep = office.inspect(f.data, ext)
            f.reports["office"] = rep
            return rep.children
        if ext == "pdf":
            prep = pdf.inspect(f.data)
            f.reports["pdf"] = prep
            return prep.children
        if ext in ("html", "hta", "svg") or (ext == "txt" and f.name.lower().endswith((".htm", ".html", ".svg", ".shtml", ".xhtml"))):
            kind = "svg" if ext == "svg" or f.name.lower().endswith(".svg") else "html"
            hrep = htmlsvg.inspect(f.data, kind)
            f.reports["html"] = hrep
            return hrep.children
        if ext == "txt" and f.name.lower().endswith((".csv", ".slk", ".iqy")) and office.csv_dde(f.data):
            rep = office.OfficeReport(kind="csv", dde=["formula calls another program"])
            f.reports["office"] = rep
        return []

    def _unpack(self, f: ScannedFile) -> None:
        assert f.data is not None
        unpacker = Unpacker(self.budget, self.passwords, self.out.events, f.location)
        members = []
        try:
            for m in unpacker.members(f.data, f.ext, f.name):
                members.append(m)
        except LimitExceeded as exc:
            self._stop(exc, f.location)
        except Exception as exc:  # archive libraries raise many types on hostile input; keep what was read
            log.debug("unpacking %s failed", f.location, exc_info=True)
            self.out.events.append(Event("corrupt", f.location, f"damaged {f.ext}: {type(exc).__name__}: {exc}"[:300]))
        for m in members:
            child = ScannedFile(
                name=m.name,
                data=m.data,
                location=f"{f.location} > {m.name}",
                part_path=f.part_path,
                depth=f.depth + 1,
                container=f.ext,
                encrypted=m.encrypted,
                decrypted=m.decrypted or f.decrypted,
            )
            self.walk(child)

    def _child(self, parent: ScannedFile, name: str, data: bytes, embedded: bool) -> None:
        if self.stopped:
            return
        if parent.depth >= self.budget.limits.max_depth:
            self.out.events.append(Event("too_deep", parent.location, f"embedded objects nested deeper than {self.budget.limits.max_depth} levels"))
            return
        try:
            self.budget.take_member()
            self.budget.admit(len(data), max(parent.size, 1), name)
        except LimitExceeded as exc:
            self._stop(exc, parent.location)
            return
        self.budget.expanded += len(data)
        self.walk(
            ScannedFile(
                name=name,
                data=data,
                location=f"{parent.location} > {name}",
                part_path=parent.part_path,
                depth=parent.depth + 1,
                container=parent.ext,
                decrypted=parent.decrypted,
            )
        )


def attachment_files(message: Message, _depth: int = 0, _seen: set[str] | None = None) -> list[ScannedFile]:
    """The top-level files: attachments and inline non-body parts, also those of attached (forwarded) messages."""
    seen = _seen if _seen is not None else set()
    files: list[ScannedFile] = []
    for p in message.parts:
        if p.path in seen:
            continue
        seen.add(p.path)
        if p.true_ext == "eml" or p.content_type in ("message/rfc822", "message/global"):
            continue  # its own parts come through message.attached_messages
        body_like = p.content_type in ("text/plain", "text/html") and not p.filename
        if not p.is_attachment and (body_like or p.content_type.startswith(("multipart/", "message/")) or not p.payload):
            continue
        if not p.is_attachment and not p.filename and p.content_type.startswith("image/"):
            continue
        name = p.filename or f"part-{p.path}"
        location = name if _depth == 0 else f"[attached message] {name}"
        # an attachment's type was sniffed by the parser, as a file that is opened; other parts are sniffed here
        ext = engine_ext(p.true_ext) if p.is_attachment and p.payload else ""
        files.append(
            ScannedFile(name=name, data=p.payload, location=location, part_path=p.path, declared_type=p.content_type,
                        sha256=p.sha256, ext=ext)
        )
    if _depth < 3:
        for inner in message.attached_messages:
            files.extend(attachment_files(inner, _depth + 1, seen))
    return files


def expand_message(message: Message, settings: AttachmentSettings, deadline: float | None = None) -> Expansion:
    """Unpack and inspect every attachment of `message` (synchronous; bounded by limits and the deadline)."""
    start = time.monotonic()
    files = list(attachment_files(message))
    # Passwords announced in the body only matter when there is something to open with them.
    passwords = announced_passwords(message) if files else []
    walker = _Walker(limits_from(settings, deadline if deadline is not None else float("inf")), passwords)
    for f in files:
        walker.walk(f)
    walker.out.elapsed = time.monotonic() - start
    return walker.out


_cache: dict[int, tuple[weakref.ref[Message], asyncio.Future[Expansion]]] = {}


def _forget(key: int, ref: weakref.ref[Message]) -> None:
    entry = _cache.get(key)
    if entry is not None and entry[0] is ref:
        del _cache[key]


def _only_bodies(message: Message) -> bool:
    """A message of plain text and HTML bodies alone (no file, no forwarded message)."""
    return not message.attached_messages and all(
        not p.is_attachment and not p.filename and p.content_type in ("text/plain", "text/html") for p in message.parts
    )


async def scan_message(message: Message, settings: AttachmentSettings, deadline: float) -> Expansion:
    """The message's expansion, computed once in a worker thread and shared by every analyzer that asks."""
    if _only_bodies(message):
        # Nothing to unpack: the same expansion, without a thread hop on every plain message.
        return expand_message(message, settings, deadline - DEADLINE_MARGIN)
    key = id(message)
    entry = _cache.get(key)
    if entry is None or entry[0]() is not message or entry[1].get_loop() is not asyncio.get_running_loop():
        ref = weakref.ref(message, lambda r, k=key: _forget(k, r))  # type: ignore[misc]
        task = asyncio.ensure_future(asyncio.to_thread(expand_message, message, settings, deadline - DEADLINE_MARGIN))
        _cache[key] = (ref, task)
        entry = (ref, task)
    # shield: one analyzer timing out must not cancel the work the others are waiting for
    return await asyncio.shield(entry[1])
