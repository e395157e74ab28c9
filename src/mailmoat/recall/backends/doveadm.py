"""Recall backend for Dovecot's doveadm HTTP API: batches of fetch/move/expunge commands over all users
of a job, far faster than one IMAP login per mailbox."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailmoat.config import Settings
from mailmoat.recall.backends.base import CopyRef, CopyResult, vault_file

Command = list[Any]  # ["fetch", {...parameters}, "tag"]
COMMANDS_PER_REQUEST = 200
PARALLEL_REQUESTS = 4
# With this many copies of one message in a batch, one all-users search beats per-user searches.
ALL_USERS_THRESHOLD = 50
FETCH_FIELDS = ["user", "mailbox", "flags", "date.received", "hdr.x-mailmoat-id"]


class DoveadmError(RuntimeError):
    """The doveadm HTTP API could not be reached or refused a request."""


def _epoch(text: str) -> float:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))
    except (ValueError, TypeError):
        return 0.0


def folders_of_all(cmds: list[Command]) -> set[str]:
    """Message ids moved by all-users commands in this batch."""
    return {str(c[2]).split(":")[1] for c in cmds if str(c[2]).startswith("all:")}


def _flags(text: str) -> list[str]:
    return [f for f in (text or "").split() if f != "\\Recent"]


class DoveadmBackend:
    name = "doveadm"
    # One call for a whole job: all-users searches and moves only pay off over every copy at once.
    batch_size = 5000

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.recall.doveadm.url
        self.hidden = settings.recall.hidden_folder
        key = settings.recall.doveadm.api_key
        self.headers = {
            "Authorization": "X-Dovecot-API " + base64.b64encode(key.encode()).decode(),
            "Content-Type": "application/json",
        }
        self.vault = settings.data_path / "recall-vault"

    # -- transport ----------------------------------------------------------------------
    def _post(self, commands: list[Command]) -> list[Any]:
        req = urllib.request.Request(self.url, data=json.dumps(commands).encode(), headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                out: list[Any] = json.loads(resp.read())
                return out
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DoveadmError(f"doveadm API {self.url}: {exc}") from exc

    async def call(self, commands: list[Command]) -> dict[str, Any]:
        """Run commands in chunks over a few parallel requests; result by tag: rows (list) or an error dict."""
        # An all-users command gets a request of its own: Dovecot 2.3's doveadm server drops to the
        # mail user after one and then cannot list users again in the same request (it aborts).
        singles = [[c] for c in commands if c[1].get("allUsers")]
        rest = [c for c in commands if not c[1].get("allUsers")]
        chunks = singles + [rest[i : i + COMMANDS_PER_REQUEST] for i in range(0, len(rest), COMMANDS_PER_REQUEST)]
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            replies = await asyncio.gather(*(loop.run_in_executor(pool, self._post, c) for c in chunks))
        out: dict[str, Any] = {}
        for reply in replies:
            for kind, payload, tag in reply:
                out[tag] = payload if kind == "doveadmResponse" else {"error": payload}
        return out

    # -- locating -----------------------------------------------------------------------
    async def _locate(
        self, copies: list[CopyRef], where: str, whole: set[str] | None = None
    ) -> dict[str, dict[str, str]]:
        """tracking id → fetched row (user, mailbox, flags, date) for copies found in `where` ('*' = visible).

        `whole` receives the message ids searched across all users whose every copy found is one of
        `copies`: those can be moved with one all-users command per folder.
        """
        found: dict[str, dict[str, str]] = {}
        by_msg: dict[str, list[CopyRef]] = defaultdict(list)
        for c in copies:
            by_msg[c.tracking_id.rpartition("-")[0] or c.tracking_id].append(c)
        cmds: list[Command] = []
        for prefix, refs in by_msg.items():
            if len(refs) >= ALL_USERS_THRESHOLD:
                q = ["mailbox", where, "header", "X-Mailmoat-Id", prefix]
                cmds.append(["fetch", {"allUsers": True, "field": FETCH_FIELDS, "query": q}, f"all:{prefix}"])
            else:
                for r in refs:
                    q = ["mailbox", where, "header", "X-Mailmoat-Id", r.tracking_id]
                    cmds.append(["fetch", {"user": r.mailbox, "field": FETCH_FIELDS, "query": q}, f"one:{r.tracking_id}"])
        wanted = {c.tracking_id: c for c in copies}
        for tag, rows in (await self.call(cmds)).items():
            if isinstance(rows, dict):
                continue
            only_wanted = True
            for row in rows:
                tid = row.get("hdr.x-mailmoat-id", "").strip()
                ref = wanted.get(tid)
                if ref is not None and (row.get("user") or row.get("username") or ref.mailbox) == ref.mailbox:
                    found.setdefault(tid, row)
                else:
                    only_wanted = False
            if whole is not None and tag.startswith("all:") and only_wanted:
                whole.add(tag[4:])
        # Message-ID fallback for copies that lost their tracking header.
        missing = [c for c in copies if c.tracking_id not in found and c.header_message_id]
        if missing:
            cmds = [
                [
                    "fetch",
                    {
                        "user": r.mailbox,
                        "field": FETCH_FIELDS,
                        "query": ["mailbox", where, "header", "Message-ID", r.header_message_id, "NOT", "header", "X-Mailmoat-Id", ""],
                    },
                    f"mid:{r.tracking_id}",
                ]
                for r in missing
            ]
            for tag, rows in (await self.call(cmds)).items():
                if isinstance(rows, list) and rows:
                    found[tag.partition(":")[2]] = {**rows[0], "by": "message-id"}
        return found

    @staticmethod
    def _query_for(ref: CopyRef, row: dict[str, str], folder: str) -> list[str]:
        if row.get("by") == "message-id":
            return ["mailbox", folder, "header", "Message-ID", ref.header_message_id, "NOT", "header", "X-Mailmoat-Id", ""]
        return ["mailbox", folder, "header", "X-Mailmoat-Id", ref.tracking_id]

    # -- protocol -----------------------------------------------------------------------
    async def recall(self, copies: list[CopyRef], mode: str) -> list[CopyResult]:
        whole: set[str] = set()
        try:
            visible = await self._locate(copies, "*", whole if mode == "move" else None)
        except DoveadmError as exc:
            return [CopyResult(c.tracking_id, "failed", reason=str(exc)) for c in copies]
        results: dict[str, CopyResult] = {}
        rest = [c for c in copies if c.tracking_id not in visible]
        if rest:
            hidden = await self._locate(rest, f"{self.hidden}/*")
            for c in rest:
                row = hidden.get(c.tracking_id)
                if row is None:
                    results[c.tracking_id] = CopyResult(c.tracking_id, "not_found", reason="no folder holds this copy")
                else:
                    folder = row["mailbox"][len(self.hidden) + 1 :] or "INBOX"
                    results[c.tracking_id] = CopyResult(
                        c.tracking_id, "already_gone", folder=folder, flags=_flags(row.get("flags", "")),
                        internal_date=_epoch(row.get("date.received", "")), location=json.dumps({"folder": row["mailbox"]}),
                    )
        todo = [c for c in copies if c.tracking_id in visible]
        cmds: list[Command] = []
        kept: dict[str, Path] = {}  # delete mode: where each copy's vault file is
        if mode == "delete":
            fetched = await self.call(
                [
                    ["fetch", {"user": c.mailbox, "field": ["text"], "query": self._query_for(c, visible[c.tracking_id], visible[c.tracking_id]["mailbox"])}, f"text:{c.tracking_id}"]
                    for c in todo
                ]
            )
            self.vault.mkdir(parents=True, exist_ok=True)
            for c in todo:
                rows = fetched.get(f"text:{c.tracking_id}")
                kept[c.tracking_id] = keep = vault_file(self.vault, c.tracking_id)
                if isinstance(rows, list) and rows:
                    keep.write_bytes(rows[0].get("text", "").encode("utf-8", "surrogateescape"))
                row = visible[c.tracking_id]
                cmds.append(["expunge", {"user": c.mailbox, "query": self._query_for(c, row, row["mailbox"])}, f"act:{c.tracking_id}"])
        else:
            created: set[tuple[str, str]] = set()
            # Every visible copy of a message is in this batch: the copies still in INBOX (most of
            # them) move with one all-users command, as fast as `doveadm move -A` typed by hand.
            # Other folders exist only for some users (an all-users move would fail for the rest):
            # those copies move one user at a time.
            folders_of: dict[str, set[str]] = defaultdict(set)
            for c in todo:
                prefix = c.tracking_id.rpartition("-")[0]
                row = visible[c.tracking_id]
                if prefix in whole and row.get("by") != "message-id" and row["mailbox"] == "INBOX":
                    folders_of[prefix].add("INBOX")
            for prefix, folders in folders_of.items():
                for folder in sorted(folders):
                    dest = f"{self.hidden}/{folder}"
                    q = ["mailbox", folder, "header", "X-Mailmoat-Id", prefix]
                    cmds.append(["move", {"allUsers": True, "destinationMailbox": dest, "query": q}, f"all:{prefix}:{folder}"])
            for c in todo:
                folder = visible[c.tracking_id]["mailbox"]
                if folder == "INBOX" and c.tracking_id.rpartition("-")[0] in folders_of:
                    continue
                dest = f"{self.hidden}/{folder}"
                if (c.mailbox, dest) not in created:
                    created.add((c.mailbox, dest))
                    cmds.append(["mailboxCreate", {"user": c.mailbox, "mailbox": [dest]}, f"mk:{c.mailbox}:{dest}"])
                cmds.append(
                    ["move", {"user": c.mailbox, "destinationMailbox": dest, "query": self._query_for(c, visible[c.tracking_id], folder)}, f"act:{c.tracking_id}"]
                )
        try:
            # Folders first, then the moves: the requests of one call run side by side.
            creates = [c for c in cmds if c[0] == "mailboxCreate"]
            replies = await self.call(creates) if creates else {}
            acts = [c for c in cmds if c[0] != "mailboxCreate"]
            replies.update(await self.call(acts) if acts else {})
            # An all-users move fails where the hidden folder does not exist yet (first recall for
            # those users): create it for everyone, then move what is still there.
            again = [c for c in acts if str(c[2]).startswith("all:") and isinstance(replies.get(c[2]), dict)]
            if again:
                await self.call([["mailboxCreate", {"allUsers": True, "mailbox": [c[1]["destinationMailbox"]]}, f"mk{c[2]}"] for c in again])
                replies.update(await self.call(again))
        except DoveadmError as exc:
            replies = {f"act:{c.tracking_id}": {"error": str(exc)} for c in todo}
        moved_whole = folders_of_all(cmds)
        for c in todo:
            row = visible[c.tracking_id]
            prefix = c.tracking_id.rpartition("-")[0]
            reply = replies.get(f"all:{prefix}:{row['mailbox']}") if prefix in moved_whole and row["mailbox"] == "INBOX" else None
            reply = reply if reply is not None else replies.get(f"act:{c.tracking_id}")
            if isinstance(reply, dict):
                results[c.tracking_id] = CopyResult(c.tracking_id, "failed", reason=f"doveadm: {reply.get('error')}")
                continue
            loc = {"vault": str(kept[c.tracking_id])} if mode == "delete" else {"folder": f"{self.hidden}/{row['mailbox']}"}
            results[c.tracking_id] = CopyResult(
                c.tracking_id, "recalled", folder=row["mailbox"], flags=_flags(row.get("flags", "")),
                internal_date=_epoch(row.get("date.received", "")), location=json.dumps(loc),
            )
        return [results[c.tracking_id] for c in copies]

    async def verify(self, copies: list[CopyRef]) -> list[CopyResult]:
        try:
            visible = await self._locate(copies, "*")
        except DoveadmError as exc:
            return [CopyResult(c.tracking_id, "present", reason=f"cannot verify: {exc}") for c in copies]
        return [
            CopyResult(c.tracking_id, "present", folder=visible[c.tracking_id]["mailbox"])
            if c.tracking_id in visible
            else CopyResult(c.tracking_id, "absent")
            for c in copies
        ]

    async def restore(self, copies: list[CopyRef]) -> list[CopyResult]:
        results: dict[str, CopyResult] = {}
        vaulted = [c for c in copies if "vault" in (json.loads(c.location) if c.location else {})]
        if vaulted:
            # doveadm cannot append a message with its flags and date over HTTP: IMAP APPEND does it.
            if self.settings.recall.imap.master_user:
                from mailmoat.recall.backends.imap import ImapBackend

                for r in await ImapBackend(self.settings).restore(vaulted):
                    results[r.tracking_id] = r
            else:
                for c in vaulted:
                    results[c.tracking_id] = CopyResult(
                        c.tracking_id, "failed", reason="restoring deleted copies needs [recall.imap] master credentials"
                    )
        moved = [c for c in copies if c.tracking_id not in results]
        cmds: list[Command] = []
        for c in moved:
            loc = json.loads(c.location) if c.location else {}
            src = loc.get("folder") or f"{self.hidden}/{c.folder or 'INBOX'}"
            target = c.folder or "INBOX"
            if target != "INBOX":
                cmds.append(["mailboxCreate", {"user": c.mailbox, "mailbox": [target]}, f"mk:{c.tracking_id}"])
            q = ["mailbox", src, "header", "X-Mailmoat-Id", c.tracking_id]
            cmds.append(["move", {"user": c.mailbox, "destinationMailbox": target, "query": q}, f"act:{c.tracking_id}"])
        try:
            creates = [c for c in cmds if c[0] == "mailboxCreate"]
            replies = await self.call(creates) if creates else {}
            acts = [c for c in cmds if c[0] != "mailboxCreate"]
            replies.update(await self.call(acts) if acts else {})
        except DoveadmError as exc:
            replies = {f"act:{c.tracking_id}": {"error": str(exc)} for c in moved}
        for c in moved:
            reply = replies.get(f"act:{c.tracking_id}")
            if isinstance(reply, dict):
                results[c.tracking_id] = CopyResult(c.tracking_id, "failed", reason=f"doveadm: {reply.get('error')}")
            else:
                results[c.tracking_id] = CopyResult(c.tracking_id, "restored", folder=c.folder or "INBOX")
        # A move whose query matched nothing still succeeds: check the copy really is back.
        back = await self._locate([c for c in moved if results[c.tracking_id].state == "restored"], "*")
        for c in moved:
            if results[c.tracking_id].state == "restored" and c.tracking_id not in back:
                results[c.tracking_id] = CopyResult(c.tracking_id, "failed", reason="not found in the hidden folder")
        return [results[c.tracking_id] for c in copies]

    async def close(self) -> None:
        return None
