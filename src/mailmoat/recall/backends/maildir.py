"""Recall backend for the embedded Maildir store (Maildir++ folders, as Dovecot lays them out)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

from mailmoat.config import Settings
from mailmoat.deliver.maildir import ensure_maildir, iter_folders, mailbox_name
from mailmoat.recall.backends.base import CopyRef, CopyResult, vault_file

# Maildir info flags ↔ IMAP system flags.
_TO_IMAP = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
_HEADER_LIMIT = 64 * 1024


def maildir_flags(name: str) -> list[str]:
    _, sep, info = name.partition(":2,")
    return [_TO_IMAP[c] for c in info if c in _TO_IMAP] if sep else []


def _read_headers(path: Path) -> dict[str, str]:
    """The few headers recall needs, read from the start of a stored message."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEADER_LIMIT)
    except OSError:
        return {}
    end = head.find(b"\n\n")
    end2 = head.find(b"\r\n\r\n")
    cut = min(x for x in (end, end2, len(head)) if x >= 0)
    out: dict[str, str] = {}
    last = ""
    for line in head[:cut].decode("utf-8", "replace").splitlines():
        if line[:1] in (" ", "\t") and last:
            out[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip().lower()
            if last in ("x-mailmoat-id", "message-id") and last not in out:
                out[last] = value.strip()
            else:
                last = ""
    return out


class MaildirBackend:
    """Moves copies into a hidden Maildir++ folder (or deletes them, keeping a vault copy for restore)."""

    name = "maildir"

    def __init__(self, settings: Settings) -> None:
        self.root = settings.mail_dir
        self.hidden = "." + settings.recall.hidden_folder
        self.vault = settings.data_path / "recall-vault"

    # -- layout -------------------------------------------------------------------------
    def mailbox_dir(self, mailbox: str) -> Path:
        return self.root / mailbox_name(mailbox)

    def folders(self, mbox: Path) -> Iterator[tuple[str, Path]]:
        """User-visible folders: ('INBOX', root) and ('Name.Sub', root/.Name.Sub); never the hidden one."""
        for name, path in iter_folders(mbox):
            if name == self.hidden[1:] or name.startswith(self.hidden[1:] + "."):
                continue
            if name == "INBOX" and not ((mbox / "cur").is_dir() or (mbox / "new").is_dir()):
                continue
            yield name, path

    @staticmethod
    def _folder_path(mbox: Path, folder: str) -> Path:
        return mbox if folder in ("", "INBOX") else mbox / ("." + folder)

    def _find_visible(self, mbox: Path, ref: CopyRef) -> tuple[str, Path] | None:
        marker = f".{ref.tracking_id}."
        candidates: list[tuple[str, Path]] = []
        for folder, fdir in self.folders(mbox):
            for sub in ("cur", "new"):
                try:
                    names = os.listdir(fdir / sub)
                except OSError:
                    continue
                for n in names:
                    if marker in n:
                        return folder, fdir / sub / n
                    candidates.append((folder, fdir / sub / n))
        # The file name no longer carries the id (e.g. re-saved by a client): read the headers.
        fallback: tuple[str, Path] | None = None
        for folder, path in candidates:
            h = _read_headers(path)
            tid = h.get("x-mailmoat-id", "")
            if tid == ref.tracking_id:
                return folder, path
            if not tid and ref.header_message_id and h.get("message-id", "") == ref.header_message_id and fallback is None:
                fallback = (folder, path)
        return fallback

    def _hidden_dir(self, mbox: Path, folder: str) -> Path:
        """Where a copy from `folder` is hidden: the hidden folder, or its sub-folder named after `folder`.

        Keeping the original folder in the path means a copy hidden by a run that died before it
        could record the move is still restorable to the right place.
        """
        return mbox / (self.hidden if folder in ("", "INBOX") else f"{self.hidden}.{folder}")

    def _find_hidden(self, mbox: Path, ref: CopyRef) -> tuple[str, Path] | None:
        marker = f".{ref.tracking_id}."
        try:
            dirs = [e for e in os.scandir(mbox) if e.name == self.hidden or e.name.startswith(self.hidden + ".")]
        except OSError:
            return None
        for e in dirs:
            folder = e.name[len(self.hidden) + 1 :] or "INBOX"
            for sub in ("cur", "new"):
                try:
                    for n in os.listdir(Path(e.path) / sub):
                        if marker in n:
                            return folder, Path(e.path) / sub / n
                except OSError:
                    continue
        return None

    # -- operations ---------------------------------------------------------------------
    def _recall_one(self, ref: CopyRef, mode: str) -> CopyResult:
        mbox = self.mailbox_dir(ref.mailbox)
        found = self._find_visible(mbox, ref)
        if found is None:
            hidden = self._find_hidden(mbox, ref)
            if hidden is not None:
                folder, hpath = hidden
                sub = "cur" if ":2," in hpath.name else "new"
                orig = str(self._folder_path(mbox, folder).relative_to(mbox) / sub / hpath.name)
                return CopyResult(
                    ref.tracking_id, "already_gone", folder=folder, flags=maildir_flags(hpath.name),
                    internal_date=hpath.stat().st_mtime, location=json.dumps({"path": str(hpath), "orig": orig}),
                )
            return CopyResult(ref.tracking_id, "not_found", reason="no folder holds this copy")
        folder, path = found
        st = path.stat()
        flags = maildir_flags(path.name)
        orig = str(path.relative_to(mbox))
        if mode == "delete":
            self.vault.mkdir(parents=True, exist_ok=True)
            keep = vault_file(self.vault, ref.tracking_id)
            data = path.read_bytes()
            keep.write_bytes(data)
            os.utime(keep, (st.st_atime, st.st_mtime))
            path.unlink()
            loc = {"vault": str(keep), "orig": orig}
        else:
            hidden_dir = self._hidden_dir(mbox, folder)
            ensure_maildir(hidden_dir)
            # Into cur/ with the name unchanged: flags travel in the name, the mtime (internal date)
            # survives rename, and nothing lands in new/ that could raise a new-mail event.
            target = hidden_dir / "cur" / path.name
            os.rename(path, target)
            loc = {"path": str(target), "orig": orig}
        return CopyResult(
            ref.tracking_id, "recalled", folder=folder, flags=flags, internal_date=st.st_mtime, location=json.dumps(loc)
        )

    def _verify_one(self, ref: CopyRef) -> CopyResult:
        mbox = self.mailbox_dir(ref.mailbox)
        found = self._find_visible(mbox, ref)
        return CopyResult(ref.tracking_id, "present" if found else "absent", folder=found[0] if found else "")

    def _restore_one(self, ref: CopyRef) -> CopyResult:
        mbox = self.mailbox_dir(ref.mailbox)
        try:
            loc = json.loads(ref.location) if ref.location else {}
        except ValueError:
            loc = {}
        orig = loc.get("orig") or ""
        if not orig:
            return CopyResult(ref.tracking_id, "failed", reason="no recorded original location")
        target = mbox / orig
        if target.parent.name not in ("cur", "new") or ".." in Path(orig).parts:
            return CopyResult(ref.tracking_id, "failed", reason=f"bad recorded location {orig!r}")
        src = loc.get("path")
        # What this recall hid is put back first; only when nothing of it is left hidden does a
        # visible copy mean "already in place" (a copy filed in two folders is two files).
        if not (src and Path(src).exists()) and not (loc.get("vault") and Path(loc["vault"]).exists()) \
                and self._find_visible(mbox, ref) is not None:
            return CopyResult(ref.tracking_id, "restored", folder=ref.folder, reason="already in place")
        ensure_maildir(target.parent.parent)
        if src and Path(src).exists():
            os.rename(src, target)
        elif loc.get("vault") and Path(loc["vault"]).exists():
            vault = Path(loc["vault"])
            tmp = target.parent.parent / "tmp" / target.name
            tmp.write_bytes(vault.read_bytes())
            os.utime(tmp, (ref.internal_date or vault.stat().st_mtime,) * 2)
            os.rename(tmp, target)
            vault.unlink()
        else:
            hidden = self._find_hidden(mbox, ref)
            if hidden is None:
                return CopyResult(ref.tracking_id, "failed", reason="the recalled copy is no longer in the hidden folder")
            os.rename(hidden[1], target)
        return CopyResult(ref.tracking_id, "restored", folder=ref.folder, flags=maildir_flags(target.name))

    async def recall(self, copies: list[CopyRef], mode: str) -> list[CopyResult]:
        return await asyncio.to_thread(lambda: [self._guard(self._recall_one, c, mode) for c in copies])

    async def verify(self, copies: list[CopyRef]) -> list[CopyResult]:
        return await asyncio.to_thread(lambda: [self._guard(self._verify_one, c) for c in copies])

    async def restore(self, copies: list[CopyRef]) -> list[CopyResult]:
        return await asyncio.to_thread(lambda: [self._guard(self._restore_one, c) for c in copies])

    async def close(self) -> None:
        return None

    @staticmethod
    def _guard(fn: object, ref: CopyRef, *args: str) -> CopyResult:
        try:
            return fn(ref, *args)  # type: ignore[operator,no-any-return]
        except OSError as exc:
            return CopyResult(ref.tracking_id, "failed", reason=f"{type(exc).__name__}: {exc}")
