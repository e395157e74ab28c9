"""Recall backend for any IMAP server: log in as each user with administrator credentials, search every
folder by the tracking header, move the copy into the hidden folder (UID MOVE, or COPY + \\Deleted + UID EXPUNGE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailmoat.config import Settings
from mailmoat.recall.backends.base import CopyRef, CopyResult, vault_file


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class ImapBackend:
    name = "imap"

    def __init__(self, settings: Settings) -> None:
        self.cfg = settings.recall.imap
        self.hidden = settings.recall.hidden_folder
        self.vault = settings.data_path / "recall-vault"

    # -- connection ---------------------------------------------------------------------
    def connect(self, mailbox: str) -> IMAPClient:
        c = IMAPClient(self.cfg.host, port=self.cfg.port, ssl=self.cfg.ssl, timeout=60)
        if self.cfg.auth == "plain":
            # SASL PLAIN with an authorization identity: authenticate as the admin, act as the user.
            c.plain_login(self.cfg.master_user, self.cfg.master_password, authorization_identity=mailbox)
        else:
            c.login(f"{mailbox}*{self.cfg.master_user}", self.cfg.master_password)
        return c

    def _sep(self, c: IMAPClient) -> str:
        try:
            for _flags, delim, _name in c.list_folders(pattern="INBOX"):
                return _s(delim) or "/"
        except IMAPClientError:
            pass
        return "/"

    def visible_folders(self, c: IMAPClient) -> list[str]:
        out = []
        for flags, _delim, name in c.list_folders():
            n = _s(name)
            if n == self.hidden or n.startswith(self.hidden + "/") or n.startswith(self.hidden + "."):
                continue
            if any(_s(f).lower() == "\\noselect" for f in flags):
                continue
            out.append(n)
        return out

    def hidden_folders(self, c: IMAPClient) -> list[str]:
        try:
            return [_s(n) for _f, _d, n in c.list_folders(pattern=f"{self.hidden}/*")]
        except IMAPClientError:
            return []

    @staticmethod
    def _search(c: IMAPClient, ref: CopyRef) -> list[int]:
        uids = list(c.search(["HEADER", "X-Mailmoat-Id", ref.tracking_id]))
        if not uids and ref.header_message_id:
            # Fallback for copies whose tracking header is gone; never trust a Message-ID on a copy
            # that carries someone else's tracking id.
            uids = list(c.search(["HEADER", "Message-ID", ref.header_message_id, "NOT", "HEADER", "X-Mailmoat-Id", ""]))
        return uids

    def _locate(self, c: IMAPClient, ref: CopyRef, folders: list[str]) -> tuple[str, list[int]] | None:
        for folder in folders:
            try:
                # EXAMINE (read-only) so that searching does not take \Recent from the user's new mail.
                c.select_folder(folder, readonly=True)
            except IMAPClientError:
                continue
            uids = self._search(c, ref)
            if uids:
                return folder, uids
        return None

    def _ensure(self, c: IMAPClient, folder: str) -> None:
        try:
            c.create_folder(folder)
        except IMAPClientError as exc:
            if "exist" not in str(exc).lower():
                raise

    def _move(self, c: IMAPClient, uids: list[int], dest: str) -> None:
        if c.has_capability("MOVE"):
            c.move(uids, dest)
        else:
            c.copy(uids, dest)
            c.add_flags(uids, [b"\\Deleted"])
            c.uid_expunge(uids)

    # -- per mailbox --------------------------------------------------------------------
    def _recall_mailbox(self, mailbox: str, refs: list[CopyRef], mode: str) -> list[CopyResult]:
        out: list[CopyResult] = []
        try:
            c = self.connect(mailbox)
        except (IMAPClientError, OSError) as exc:
            return [CopyResult(r.tracking_id, "failed", reason=f"login as {mailbox}: {exc}") for r in refs]
        try:
            folders = self.visible_folders(c)
            for ref in refs:
                try:
                    out.append(self._recall_one(c, ref, folders, mode))
                except (IMAPClientError, OSError) as exc:
                    out.append(CopyResult(ref.tracking_id, "failed", reason=f"{type(exc).__name__}: {exc}"))
            # Prove it while still logged in: a second login per mailbox would double the cost.
            # A folder created since the first LIST is listed again (a user filing mail meanwhile).
            done = [(r, ref) for r, ref in zip(out, refs, strict=True) if r.state in ("recalled", "already_gone")]
            if done:
                try:
                    if self.cfg.all_folders:
                        # A view that cannot be opened proves nothing: then nothing counts as verified.
                        c.select_folder(self.cfg.all_folders, readonly=True)
                        now_visible = [self.cfg.all_folders]
                    else:
                        now_visible = self.visible_folders(c)
                except (IMAPClientError, OSError):
                    now_visible = []
                for r, ref in done:
                    try:
                        r.verified = bool(now_visible) and self._locate(c, ref, now_visible) is None
                    except (IMAPClientError, OSError):
                        r.verified = False
        finally:
            with contextlib.suppress(Exception):  # the server may already have closed the connection
                c.logout()
        return out

    def _recall_one(self, c: IMAPClient, ref: CopyRef, folders: list[str], mode: str) -> CopyResult:
        found = self._locate(c, ref, folders)
        if found is None:
            for hf in self.hidden_folders(c):
                try:
                    c.select_folder(hf, readonly=True)
                except IMAPClientError:
                    continue
                uids = self._search(c, ref)
                if uids:
                    info = c.fetch(uids[:1], ["FLAGS", "INTERNALDATE"])[uids[0]]
                    orig = hf[len(self.hidden) + 1 :] or "INBOX"
                    return CopyResult(
                        ref.tracking_id, "already_gone", folder=orig, flags=[_s(f) for f in info[b"FLAGS"]],
                        internal_date=_ts(info.get(b"INTERNALDATE")), location=json.dumps({"folder": hf}),
                    )
            return CopyResult(ref.tracking_id, "not_found", reason="no folder holds this copy")
        folder, uids = found
        # Flags and date while still read-only; the UIDs found by EXAMINE stay valid after SELECT.
        info = c.fetch(uids[:1], ["FLAGS", "INTERNALDATE"])[uids[0]]
        c.select_folder(folder, readonly=False)
        flags = [_s(f) for f in info[b"FLAGS"] if _s(f) != "\\Recent"]
        idate = _ts(info.get(b"INTERNALDATE"))
        if mode == "delete":
            self.vault.mkdir(parents=True, exist_ok=True)
            body = c.fetch(uids[:1], ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
            keep = vault_file(self.vault, ref.tracking_id)
            keep.write_bytes(body)
            c.add_flags(uids, [b"\\Deleted"])
            c.uid_expunge(uids)
            loc: dict[str, Any] = {"vault": str(keep)}
        else:
            dest = f"{self.hidden}/{folder}"
            try:
                self._move(c, uids, dest)
            except IMAPClientError:
                # Usually [TRYCREATE]: the hidden folder does not exist yet for this user.
                self._ensure(c, dest)
                self._move(c, uids, dest)
            loc = {"folder": dest}
        return CopyResult(ref.tracking_id, "recalled", folder=folder, flags=flags, internal_date=idate, location=json.dumps(loc))

    def _verify_mailbox(self, mailbox: str, refs: list[CopyRef]) -> list[CopyResult]:
        try:
            c = self.connect(mailbox)
        except (IMAPClientError, OSError) as exc:
            return [CopyResult(r.tracking_id, "present", reason=f"cannot verify: {exc}") for r in refs]
        try:
            folders = self.visible_folders(c)
            out = []
            for ref in refs:
                found = self._locate(c, ref, folders)
                out.append(CopyResult(ref.tracking_id, "present" if found else "absent", folder=found[0] if found else ""))
            return out
        finally:
            c.logout()

    def _restore_mailbox(self, mailbox: str, refs: list[CopyRef]) -> list[CopyResult]:
        try:
            c = self.connect(mailbox)
        except (IMAPClientError, OSError) as exc:
            return [CopyResult(r.tracking_id, "failed", reason=f"login as {mailbox}: {exc}") for r in refs]
        out = []
        try:
            for ref in refs:
                try:
                    out.append(self._restore_one(c, ref))
                except (IMAPClientError, OSError) as exc:
                    out.append(CopyResult(ref.tracking_id, "failed", reason=f"{type(exc).__name__}: {exc}"))
        finally:
            c.logout()
        return out

    def _restore_one(self, c: IMAPClient, ref: CopyRef) -> CopyResult:
        loc = json.loads(ref.location) if ref.location else {}
        target = ref.folder or "INBOX"
        if target != "INBOX":
            self._ensure(c, target)
        if loc.get("vault"):
            from pathlib import Path

            data = Path(loc["vault"]).read_bytes()
            flags = [f.encode() for f in ref.flags]
            c.append(target, data, flags=flags, msg_time=datetime.fromtimestamp(ref.internal_date) if ref.internal_date else None)
            return CopyResult(ref.tracking_id, "restored", folder=target)
        hidden = loc.get("folder") or f"{self.hidden}/{target}"
        c.select_folder(hidden, readonly=False)
        uids = self._search(c, ref)
        if not uids:
            return CopyResult(ref.tracking_id, "failed", reason=f"not in {hidden} any more")
        # MOVE keeps flags and the internal date; only the UID is new.
        self._move(c, uids, target)
        return CopyResult(ref.tracking_id, "restored", folder=target)

    # -- protocol -----------------------------------------------------------------------
    async def _fan_out(self, copies: list[CopyRef], fn: Any, *args: Any) -> list[CopyResult]:
        groups: dict[str, list[CopyRef]] = defaultdict(list)
        for c in copies:
            groups[c.mailbox].append(c)
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.connections)) as pool:
            futures = [loop.run_in_executor(pool, fn, mbox, refs, *args) for mbox, refs in groups.items()]
            results = await asyncio.gather(*futures)
        return [r for group in results for r in group]

    async def recall(self, copies: list[CopyRef], mode: str) -> list[CopyResult]:
        return await self._fan_out(copies, self._recall_mailbox, mode)

    async def verify(self, copies: list[CopyRef]) -> list[CopyResult]:
        return await self._fan_out(copies, self._verify_mailbox)

    async def restore(self, copies: list[CopyRef]) -> list[CopyResult]:
        return await self._fan_out(copies, self._restore_mailbox)

    async def close(self) -> None:
        return None


def _ts(v: Any) -> float:
    return v.timestamp() if isinstance(v, datetime) else 0.0
