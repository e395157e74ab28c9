"""Cheap structural checks: parse defects, missing From/Date/Message-ID, a From no mail software
writes, malformed message identifiers, several From, a header block split by a blank line,
crowded To/Cc."""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, BaseAnalyzer
from mailmoat.model import Address, Direction, Finding, Symbol

MANY_RECIPIENTS = 20  # addresses in To+Cc that look like a bulk blast rather than a conversation
_SHOWN = 5
# Parse defects are "category:kind detail"; these categories say the structure is malformed.
_MALFORMED = (
    "mime:",
    "charset:undecodable",
    "charset:unknown",
    "header:bad-address",
    "header:split-encoded-word",
    "header:unterminated-encoded-word",
    "input:",
)
_LIMIT = "limit:"
_INCOMPLETE = ("parse:", "enrich:", "document ")
_MULTI_FROM = ("header:multiple-from-addresses", "header:duplicate-from")
_UNQUOTED_COMMA = "header:from-unquoted-comma"
_ADDRESS_IN_COMMENT = "header:from-address-in-comment"
_BLANK_IN_FOLD = "header:blank-line-in-fold"
# A label of a host name: letters (of any script, for IDNs) and digits, hyphens inside.
_HOST_LABEL = re.compile(r"(?:[^\W_]|[^\W_][\w-]*[^\W_])")
_BRACKETED = re.compile(r"<([^<>]*)>")
# Mail software writes a message identifier as <left@right>, a few dozen to a hundred characters
# long; bulk-mail kits fill it with junk ("<@mail-x.Bounce_dnO.io>", "<0UW3Y47e27xw>", kilobytes
# of random letters) so that no two copies look alike.
_ID_MAX = 250
_IDS_READ = 500  # reply identifiers read at most: a References header of megabytes costs no more


def bad_sender_domain(sender: Address) -> str | None:
    """Why no mail server could have a From address's domain, or None when it could."""
    if "@" not in sender.addr:
        return "has no @"
    domain = sender.domain
    if domain.startswith("["):
        return None  # an address literal: rare, but valid
    labels = domain.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return f"has a domain no host name can be ({domain[:60]!r})"
    if len(labels) < 2:
        return f"has a domain of one label ({domain[:60]!r})"
    return None


def spaced_address(value: str) -> str | None:
    """The bracketed address of a header written with blanks inside the brackets, or None.

    The grammar allows blanks there, but no mail program writes "<a@example.com >": a bulk-mail
    kit that pastes the address into a template does (2024–2025 phishing, no ham in the corpora).
    """
    for found in _BRACKETED.finditer(value):
        inside = found.group(1)
        if "@" in inside and inside != inside.strip():
            return found.group(0)
    return None


def malformed_id(ident: str) -> str | None:
    """Why a message identifier (what stands between its angle brackets) is malformed, or None."""
    ident = re.sub(r"\s+", "", ident)
    left, at, right = ident.rpartition("@")
    if len(ident) > _ID_MAX:
        return f"{len(ident)} characters long"
    if not at or not left or not right:
        return "not of the form <left@right>"
    return None


def _kind(defect: str) -> str:
    return defect.split(" ", 1)[0]


def _summary(defects: list[str]) -> str:
    kinds = sorted({_kind(d) for d in defects})
    more = f" and {len(kinds) - _SHOWN} more" if len(kinds) > _SHOWN else ""
    return ", ".join(kinds[:_SHOWN]) + more


class HeadersAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "headers"
    symbols: ClassVar[tuple[Symbol, ...]] = (
        Symbol(
            "MIME_DEFECT", 0.5, "headers", "The MIME structure, a charset or an address header is malformed"
        ),
        Symbol(
            "MIME_LIMIT_EXCEEDED",
            1.0,
            "headers",
            "The message exceeds a parser safety limit: parts were not analysed",
        ),
        Symbol("PARSE_INCOMPLETE", 1.0, "headers", "Part of the message could not be parsed or enriched"),
        Symbol("MISSING_FROM", 2.0, "headers", "No From header"),
        Symbol("MULTIPLE_FROM", 2.0, "headers", "More than one From header or From address"),
        Symbol("MISSING_DATE", 1.0, "headers", "No Date header"),
        Symbol("MISSING_MESSAGE_ID", 1.0, "headers", "No Message-ID header"),
        Symbol(
            "FROM_MALFORMED",
            2.5,
            "headers",
            "Inbound From header no mail software writes: an unquoted comma in the name, the address inside a comment, a space inside the address's brackets, or a domain no host can have",
        ),
        Symbol(
            "MALFORMED_MESSAGE_ID",
            2.0,
            "headers",
            "Inbound Message-ID, In-Reply-To or References identifier that is not <left@right> or is hundreds of characters long",
        ),
        Symbol(
            "HEADERS_SPLIT_BY_BLANK_LINE",
            2.0,
            "headers",
            "A blank line inside a folded header ended the header block early: broken bulk-mail software",
        ),
        Symbol("MANY_RECIPIENTS_TO", 1.0, "headers", f"{MANY_RECIPIENTS} or more addresses in To/Cc"),
    )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        m = ctx.message
        out: list[Finding] = []
        groups: list[tuple[str, list[str]]] = [
            ("MIME_DEFECT", [d for d in m.defects if d.startswith(_MALFORMED)]),
            ("MIME_LIMIT_EXCEEDED", [d for d in m.defects if d.startswith(_LIMIT)]),
            ("PARSE_INCOMPLETE", [d for d in m.defects if d.startswith(_INCOMPLETE)]),
        ]
        for symbol, found in groups:
            if found:
                out.append(
                    self.finding(
                        symbol, f"{len(found)} defect(s): {_summary(found)}", {"defects": found[:50]}
                    )
                )
        froms = m.header_all("From")
        if not froms:
            out.append(self.finding("MISSING_FROM", "no From header"))
        elif len(froms) > 1 or any(d in _MULTI_FROM for d in m.defects):
            out.append(self.finding("MULTIPLE_FROM", " | ".join(froms[:3])[:300]))
        elif ctx.envelope.direction == Direction.INBOUND:
            # A colleague's script may send as root@host01; from outside, such a From is forged.
            why: list[str] = []
            if _UNQUOTED_COMMA in m.defects:
                why.append(f"name written with an unquoted comma: {froms[0][:80]!r}")
            if _ADDRESS_IN_COMMENT in m.defects:
                why.append(f"its only address is inside a comment, where servers read none: {froms[0][:80]!r}")
            domain_why = bad_sender_domain(m.from_)
            if domain_why:
                why.append(f"address {m.from_.addr[:80]!r} {domain_why}")
            spaced = spaced_address(froms[0])
            if spaced:
                why.append(f"address written with a space inside its brackets: {spaced[:80]!r}")
            if why:
                out.append(self.finding("FROM_MALFORMED", "; ".join(why)))
        if not m.header("Date").strip():
            out.append(self.finding("MISSING_DATE", "no Date header"))
        if not m.header("Message-ID").strip():
            out.append(self.finding("MISSING_MESSAGE_ID", "no Message-ID header"))
        split = next((d for d in m.defects if d.startswith(_BLANK_IN_FOLD)), None)
        if split and ctx.envelope.direction == Direction.INBOUND:
            out.append(self.finding("HEADERS_SPLIT_BY_BLANK_LINE", f"headers read again after the blank line ({split})"))
        if ctx.envelope.direction == Direction.INBOUND:
            # Our own applications may number their mail as they like; from outside it is a kit's.
            ids = m.header_all("In-Reply-To") + m.header_all("References")
            bad_ids = self._malformed_ids(m.header("Message-ID"), ids)
            if bad_ids:
                out.append(self.finding("MALFORMED_MESSAGE_ID", "; ".join(bad_ids)))
        n = len(m.to) + len(m.cc)
        if n >= MANY_RECIPIENTS:
            out.append(self.finding("MANY_RECIPIENTS_TO", f"{n} addresses in To/Cc"))
        return out

    @staticmethod
    def _malformed_ids(message_id: str, refs: list[str]) -> list[str]:
        out: list[str] = []
        if message_id.strip():
            first = _BRACKETED.search(message_id)
            why = malformed_id(first.group(1)) if first else "not in angle brackets"
            if why:
                out.append(f"Message-ID {message_id.strip()[:80]!r} is {why}")
        # In-Reply-To may still be a phrase ("your message of ..."), as RFC 822 allowed: only what
        # is written as an identifier is read, and no more of them than a long thread holds.
        idents = (m.group(1) for value in refs for m in _BRACKETED.finditer(value))
        for ident in itertools.islice(idents, _IDS_READ):
            why = malformed_id(ident)
            if why:
                out.append(f"reply identifier {('<' + ident + '>')[:80]!r} is {why}")
                break
        return out
