"""Durable spool: an accepted message is on disk (fsync + rename + dir fsync) before the 250 goes out.

Layout under the spool directory::

    tmp/            being written (anything here after a crash was never acknowledged)
    new/            durable, waiting to be processed; the file mtime is the earliest processing time
    work/<owner>/   claimed by one worker (moved back to new/ when that worker or the gateway restarts)
    lock            held (flock) by the running gateway so two gateways never share a spool

One entry is one file ``<envelope id>.<attempt>``: a magic line, the envelope as one JSON line,
then the raw message bytes. Claiming is a rename, so exactly one worker wins an entry even when
several are notified of it. A claimed entry is hard-linked into the raw store as the retained copy
(`keep`): the message is written and fsynced once, and readers of a kept copy (`*.spool`) skip the
envelope with `entry_message`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mailmoat.durable import fsync_dir, fsync_dir_shared
from mailmoat.model import Envelope

MAGIC = b"MAILMOAT-SPOOL 1\n"
KEPT_SUFFIX = ".spool"  # a retained copy that is a spool entry (envelope line first), not a bare message


class SpoolError(RuntimeError):
    """The spool cannot be used (locked by another gateway, or an entry that cannot be read)."""


@dataclass(frozen=True)
class SpoolRef:
    """A claimed (or just written) spool entry."""

    name: str  # file name: "<envelope id>.<attempt>"
    path: Path

    @property
    def id(self) -> str:
        return self.name.partition(".")[0]

    @property
    def attempts(self) -> int:
        """How many times processing was deferred or failed before (0 for a fresh entry)."""
        tail = self.name.partition(".")[2]
        return int(tail) if tail.isdigit() else 0




def split_entry(data: bytes) -> tuple[Envelope, bytes]:
    """The envelope and the message of a spool entry's bytes."""
    if not data.startswith(MAGIC):
        raise SpoolError("not a mailmoat spool entry")
    head_end = data.index(b"\n", len(MAGIC))
    return Envelope.from_dict(json.loads(data[len(MAGIC) : head_end])), data[head_end + 1 :]


def entry_message(data: bytes) -> bytes:
    """The message of a kept spool entry (see `Spool.keep`); bytes without the spool header are
    returned as they are."""
    if not data.startswith(MAGIC):
        return data
    end = data.find(b"\n", len(MAGIC))
    return data[end + 1 :] if end >= 0 else b""


def _valid_name(name: str) -> bool:
    head, dot, tail = name.partition(".")
    return bool(head) and bool(dot) and tail.isdigit() and not name.startswith(".")


class Spool:
    """File-system spool; every method is blocking (call it from a thread in an event loop)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.new = self.root / "new"
        self.work = self.root / "work"
        for d in (self.tmp, self.new, self.work):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    # -- ownership -------------------------------------------------------------------------

    def lock(self, wait: float = 10.0) -> None:
        """Take the spool for this gateway; waits a little for a previous (dying) one to let go."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise SpoolError(f"spool {self.root} is in use by another mailmoat gateway") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writing ---------------------------------------------------------------------------

    def write(self, envelope: Envelope, raw: bytes) -> SpoolRef:
        """Store envelope + raw durably; only when this returns may the 250 be sent."""
        name = f"{envelope.id}.0"
        tmp = self.tmp / name
        head = MAGIC + json.dumps(envelope.to_dict(), separators=(",", ":")).encode("ascii") + b"\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(head + raw)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.new / name
        os.rename(tmp, final)
        fsync_dir_shared(self.new)  # one fsync for the sessions spooling at the same time
        return SpoolRef(name, final)

    # -- reading and claiming ----------------------------------------------------------------

    def pending(self, now: float | None = None) -> list[str]:
        """Names in new/ that are due (mtime not in the future), oldest id first."""
        now = time.time() if now is None else now
        names: list[str] = []
        with os.scandir(self.new) as it:
            for e in it:
                if not _valid_name(e.name):
                    continue
                try:
                    if e.stat().st_mtime <= now:
                        names.append(e.name)
                except FileNotFoundError:
                    continue  # claimed meanwhile
        names.sort()
        return names

    def count(self) -> int:
        """Entries not yet finished (waiting, deferred or being processed)."""
        n = sum(1 for name in os.listdir(self.new) if _valid_name(name))
        for owner in self.work.iterdir():
            n += sum(1 for name in os.listdir(owner) if _valid_name(name))
        return n

    def claim(self, name: str, owner: str) -> SpoolRef | None:
        """Take an entry from new/ for one worker; None when another worker took it first."""
        dest_dir = self.work / owner
        dest = dest_dir / name
        try:
            os.rename(self.new / name, dest)
        except FileNotFoundError:
            # Either the entry is gone (another worker took it) or this owner's directory does
            # not exist yet: make sure of the directory and try once more. (Judging by the
            # directory alone lost entries to a thread that had just created it.)
            dest_dir.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self.new / name, dest)
            except FileNotFoundError:
                return None
        return SpoolRef(name, dest)

    def load(self, ref: SpoolRef) -> tuple[Envelope, bytes]:
        data = ref.path.read_bytes()
        try:
            return split_entry(data)
        except SpoolError:
            raise SpoolError(f"{ref.path}: not a mailmoat spool entry") from None

    def keep(self, ref: SpoolRef, folder: Path, name: str) -> tuple[Path, bool]:
        """Hard-link a claimed entry as `folder/name`, durably (directory fsync): a retained copy
        that costs no second write of the message. The entry's file is never rewritten, only renamed,
        so the link stays identical to what was acknowledged. Raises OSError where links are not
        possible (another file system): the caller then writes a copy.

        Returns the path and whether this call made the link: False means an earlier attempt of
        this entry made it (and may have gone on to deliver), since it is made before anything else.
        """
        final = folder / name
        made = True
        try:
            try:
                os.link(ref.path, final)
            except FileNotFoundError:
                if not ref.path.exists():
                    raise
                folder.mkdir(parents=True, exist_ok=True)  # the folder's first file
                os.link(ref.path, final)
        except FileExistsError:
            made = False
            if not os.path.samefile(ref.path, final):  # not this entry's own link from an earlier try
                tmp = folder / f".{name}.{os.getpid()}.tmp"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                os.link(ref.path, tmp)
                os.replace(tmp, final)
        fsync_dir_shared(folder)
        return final, made

    # -- finishing -------------------------------------------------------------------------

    def done(self, ref: SpoolRef) -> None:
        """The message is recorded and acted on; forget it.

        No directory fsync here: if the unlink is lost in a crash the entry is processed again,
        which the record (idempotent on the envelope id) and delivery (skips delivered copies) absorb.
        """
        with contextlib.suppress(FileNotFoundError):
            ref.path.unlink()

    def defer(self, ref: SpoolRef, delay: float) -> SpoolRef:
        """Put a claimed entry back for another try after `delay` seconds (attempt count + 1)."""
        name = f"{ref.id}.{ref.attempts + 1}"
        due = time.time() + max(0.0, delay)
        os.utime(ref.path, (due, due))
        dest = self.new / name
        os.rename(ref.path, dest)
        return SpoolRef(name, dest)

    def recover(self, owner: str | None = None) -> int:
        """Return claimed entries (all, or one dead worker's) to new/; drop unacknowledged tmp files.

        Call with no owner only at start-up, before any worker runs.
        """
        moved = 0
        owners = [self.work / owner] if owner else [p for p in self.work.iterdir() if p.is_dir()]
        for d in owners:
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if _valid_name(p.name):
                    os.rename(p, self.new / p.name)
                    moved += 1
        if owner is None:
            # A file still in tmp/ never got its 250: the client will send it again.
            for p in self.tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        if moved:
            fsync_dir(self.new)
        return moved
