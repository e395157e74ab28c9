"""The embedded Maildir store: one Maildir per recipient under `mail_dir`, Maildir++ folders as Dovecot lays them out."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailmoat.durable import fsync_dir_shared

_TMP_SEQ = itertools.count()
_UNSAFE_HOST = re.compile(r"[/:\\\s]")
# Errors about a file name itself, which every retry meets again: ENAMETOOLONG (a local part
# past the filesystem's 255-byte names), EILSEQ (bytes a filesystem such as ZFS utf8only
# refuses). Anything else (disk full, permissions, a file where a directory belongs) an operator
# can fix, so it is retried.
_BAD_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ})


def bad_name(exc: OSError) -> bool:
    """True when the filesystem refuses the mailbox's or the copy's name: no retry can store it."""
    return exc.errno in _BAD_NAME_ERRNOS


def mailbox_name(address: str) -> str:
    """Directory name of an address's Maildir: lower-case, '/' replaced, never hidden or relative."""
    name = address.strip().lower().replace("/", "_").replace("\x00", "_")
    if not name or name.startswith("."):
        name = "_" + name
    return name


def folder_dir(mailbox: Path, folder: str) -> Path:
    """Maildir++ directory of an IMAP folder name ("INBOX", "Junk", "Archive/2024" → .Archive.2024)."""
    if folder in ("", "INBOX"):
        return mailbox
    return mailbox / ("." + folder.replace("/", "."))


def iter_folders(mailbox: Path) -> Iterator[tuple[str, Path]]:
    """Every folder of a mailbox, hidden ones included: ("INBOX", root), ("Junk", root/.Junk) ..."""
    yield "INBOX", mailbox
    try:
        entries = list(os.scandir(mailbox))
    except OSError:
        return
    for e in entries:
        if e.name.startswith(".") and e.name not in (".", "..") and e.is_dir(follow_symlinks=False):
            yield e.name[1:], Path(e.path)


def ensure_maildir(path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)


def find_copy(mailbox: Path, tracking_id: str) -> Path | None:
    """The file of the copy with this tracking id in any folder of the mailbox (new or cur), if any."""
    marker = f".{tracking_id}."
    for _folder, fdir in iter_folders(mailbox):
        for sub in ("new", "cur"):
            try:
                names = os.listdir(fdir / sub)
            except OSError:
                continue
            for n in names:
                if marker in n:
                    return fdir / sub / n
    return None


@dataclass
class StoredCopy:
    path: Path
    already: bool  # the copy was there before (delivered by an earlier attempt)


class MaildirStore:
    """Writes copies as `new/<epoch>.<tracking_id>.<hostname>`: tmp, fsync, link, directory fsync."""

    def __init__(self, root: Path, hostname: str) -> None:
        self.root = Path(root)
        self.host = _UNSAFE_HOST.sub("_", hostname) or "localhost"

    def mailbox_dir(self, address: str) -> Path:
        return self.root / mailbox_name(address)

    def file_name(self, tracking_id: str, epoch: float) -> str:
        return f"{int(epoch)}.{tracking_id}.{self.host}"

    def deliver(self, address: str, tracking_id: str, data: bytes, epoch: float, *, check_existing: bool = True) -> StoredCopy:
        """Store one copy unless a copy with this tracking id is already anywhere in the mailbox.

        The name depends only on the message (its arrival time) and the tracking id, and the
        final step is a link that refuses to overwrite, so two concurrent attempts store one file.
        """
        mbox = self.mailbox_dir(address)
        if check_existing:
            found = find_copy(mbox, tracking_id)
            if found is not None:
                return StoredCopy(found, True)
        name = self.file_name(tracking_id, epoch)
        tmp = mbox / "tmp" / f"{name}.{os.getpid()}.{next(_TMP_SEQ)}"  # unique per process and thread
        final = mbox / "new" / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # a new mailbox: create it only then (not three mkdirs per copy)
            ensure_maildir(mbox)
            fd = os.open(tmp, flags, 0o600)
        try:
            view = memoryview(to_lf(data))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            already = not _link_new(tmp, final, mbox)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir_shared(mbox / "new")
        return StoredCopy(final, already)


def _link_new(tmp: Path, final: Path, mbox: Path) -> bool:
    """Link the written copy to its final name unless that name exists; True when linked."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except FileNotFoundError:  # tmp/ was there but not new/ (a mailbox made by hand): complete it
        ensure_maildir(mbox)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
    return True


def to_lf(data: bytes) -> bytes:
    """Maildir files end lines with LF, as every MDA (and Dovecot) writes them."""
    return data.replace(b"\r\n", b"\n")


