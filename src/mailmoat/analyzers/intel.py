"""Threat indicator matches: listed URLs, domains, senders, IPs and attachment hashes (with the list and entry)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any, ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.intel import Indicator, IntelIndex
from mailmoat.model import Finding, Message, Part, Symbol
from mailmoat.urlcheck.links import MAX_TARGETS, host_of, redirect_targets

MAX_URLS = 500

SYMBOLS = (
    Symbol("INTEL_URL", 12.0, "intel", "A link is on a threat indicator list"),
    Symbol("INTEL_DOMAIN", 12.0, "intel", "A link or sender domain is on a threat indicator list"),
    Symbol("INTEL_SENDER", 12.0, "intel", "A sender address is on a threat indicator list"),
    Symbol("INTEL_IP", 10.0, "intel", "The sending or a relaying IP address is on a threat indicator list"),
    Symbol("INTEL_HASH", 12.0, "intel", "An attachment's SHA-256 is on a threat indicator list"),
    Symbol("QR_URL_LISTED", 3.0, "qr", "A QR code leads to a listed URL or domain"),
)


def _all_parts(msg: Message, depth: int = 0) -> list[Part]:
    parts = list(msg.parts)
    if depth < 3:
        for inner in msg.attached_messages:
            parts.extend(_all_parts(inner, depth + 1))
    return parts


class IntelAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "intel"
    symbols: ClassVar[tuple[Symbol, ...]] = SYMBOLS

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        # <data_dir>/intel holds indicators added from the console or the API.
        dirs = [*env.settings.intel.dirs, str(env.settings.data_path / "intel")]
        self.index: IntelIndex | None = IntelIndex(dirs)

    def enabled(self) -> bool:
        return self.index is not None

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.index is None:
            return []
        if self.index.due():
            # Re-reading a large feed takes seconds: never on the event loop. Lookups meanwhile
            # use the previous tables, which are swapped in whole.
            await asyncio.to_thread(self.index.refresh)
        if not len(self.index):
            return []
        out: list[Finding] = []
        seen: dict[tuple[str, str, str], Finding] = {}

        def hit(symbol: str, ind: Indicator, what: str, extra: dict[str, Any] | None = None) -> None:
            key = (symbol, ind.kind, ind.value)
            if key in seen:
                # One finding per listed entry (scored once); further places it shows up join the evidence.
                f = seen[key]
                if f.evidence.count("; also ") < 3 and what not in f.evidence:
                    f.evidence += f"; also {what}"
                return
            data = {"kind": ind.kind, "value": ind.value, "file": ind.file, "ref": ind.ref, "source": ind.source, **(extra or {})}
            f = self.finding(symbol, f"{what} is listed: {ind.kind} {ind.value} in {ind.where()}", data)
            seen[key] = f
            out.append(f)

        msg, env = ctx.message, ctx.envelope
        for u in msg.urls[:MAX_URLS]:
            scheme = u.scheme.lower()
            if scheme and scheme not in ("http", "https", "ftp"):
                continue
            qr = u.source == "qr"
            where = "QR code link" if qr else "link"
            for url, label in [(u.url, where)] + [(t, f"{where} (redirect target)") for t in redirect_targets(u.url)[:MAX_TARGETS]]:
                host = (u.host if url is u.url else "") or host_of(url)
                ind = self.index.match_url(url)
                sym = "INTEL_URL"
                how = ""
                if ind is None:
                    ind = self.index.match_page(url)
                    how = " (the page of a listed URL)" if ind is not None else ""
                if ind is None and host:
                    ind = self.index.match_domain(host)
                    sym = "INTEL_DOMAIN"
                if ind is None:
                    continue
                hit(sym, ind, f"{label} {url[:300]}{how}", {"url": url[:1000], "source_kind": u.source})
                if qr:
                    hit("QR_URL_LISTED", ind, f"QR code link {url[:300]}", {"url": url[:1000]})

        senders = [("envelope sender", env.mail_from), ("From", msg.from_.addr)]
        senders += [("Reply-To", a.addr) for a in msg.reply_to]
        if msg.sender is not None:
            senders.append(("Sender", msg.sender.addr))
        for label, addr in senders:
            addr = addr.strip().strip("<>")
            if "@" not in addr:
                continue
            ind = self.index.match_sender(addr)
            if ind is not None:
                hit("INTEL_SENDER", ind, f"{label} {addr}")
                continue
            dind = self.index.match_domain(addr.rpartition("@")[2])
            if dind is not None:
                hit("INTEL_DOMAIN", dind, f"{label} domain of {addr}")

        ips = [("client IP", env.peer_ip)] + [(f"Received hop {h.from_host or h.helo or ''}".strip(), h.ip) for h in msg.received]
        for label, ip in ips:
            if not ip or _private(ip):
                continue
            ind = self.index.match_ip(ip)
            if ind is not None:
                hit("INTEL_IP", ind, f"{label} {ip}")

        for part in _all_parts(msg):
            if part.sha256:
                ind = self.index.match_hash(part.sha256)
                if ind is not None:
                    name = part.filename or f"part {part.path}"
                    hit("INTEL_HASH", ind, f"attachment {name} (sha256 {part.sha256[:16]}…)", {"part": part.path, "filename": part.filename})
        return out


def _private(ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return True
    return a.is_loopback or a.is_link_local or a.is_unspecified
