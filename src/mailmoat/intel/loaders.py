"""Indicator file formats: plain lists, CSV, MISP JSON events and STIX 2.1 bundles → Indicator records."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mailmoat.urlcheck import domains as dom

log = logging.getLogger(__name__)

KINDS = ("domain", "url", "sender", "ip", "sha256")
# The widest network (prefix length by IP version) an IP indicator or an allow/deny entry may name:
# a wider one marks (or waves through) mail from a whole region of the internet, which no feed
# means and one mistyped line would do.
WIDEST_PREFIX = {4: 8, 6: 32}


class LoadError(ValueError):
    """A file that could not be read as indicators, with the reason."""


@dataclass(frozen=True)
class Indicator:
    """One listed value, with where it came from (file, line or object id) for the evidence."""

    kind: str  # one of KINDS
    value: str  # normalised (see normalise)
    file: str = ""
    ref: str = ""  # "line 12", "attribute 5f3c…", "indicator--…"
    source: str = ""  # feed, event or indicator name

    def where(self) -> str:
        name = Path(self.file).name if self.file else "intel"
        parts = [name] + ([self.ref] if self.ref else [])
        text = " ".join(parts)
        return f"{text} ({self.source})" if self.source else text


# -- normalising ---------------------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-f]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")

KIND_ALIASES = {
    "domain": "domain", "domains": "domain", "domain-name": "domain", "hostname": "domain", "host": "domain",
    "fqdn": "domain", "url": "url", "urls": "url", "uri": "url", "link": "url", "sender": "sender",
    "email": "sender", "email-src": "sender", "email-addr": "sender", "from": "sender", "mail": "sender",
    "ip": "ip", "ip-src": "ip", "ip-dst": "ip", "ipv4": "ip", "ipv6": "ip", "ipv4-addr": "ip",
    "ipv6-addr": "ip", "cidr": "ip", "sha256": "sha256", "sha-256": "sha256", "hash": "sha256",
    "file-sha256": "sha256",
}  # fmt: skip


def refang(value: str) -> str:
    """Undo the usual 'defanging' of shared indicators: hxxp://, [.], (.), [@], [:]."""
    v = value.strip()
    v = re.sub(r"^hxxp", "http", v, flags=re.I)
    v = re.sub(r"^fxp", "ftp", v, flags=re.I)
    for a, b in (("[.]", "."), ("(.)", "."), ("{.}", "."), ("[dot]", "."), ("[@]", "@"), ("[at]", "@"), ("[:]", ":"), ("[://]", "://")):
        v = v.replace(a, b)
    return v


def normalise_url(url: str) -> str:
    """Canonical form for exact URL matching: lower-case scheme and host, no fragment, no default port, no bare '/'."""
    u = refang(url)
    if "://" not in u[:12]:
        u = "http://" + u
    try:
        p = urlsplit(u)
        host = dom.to_ascii(p.hostname or "")
        port = p.port
    except ValueError:
        return u.lower()
    scheme = p.scheme.lower()
    netloc = host
    if port and not (scheme == "http" and port == 80) and not (scheme == "https" and port == 443):
        netloc = f"{host}:{port}"
    path = p.path if p.path not in ("", "/") else ""
    return urlunsplit((scheme, netloc, path, p.query, ""))


def normalise(kind: str, value: str) -> str | None:
    """The canonical value for an indicator of `kind`, or None when it is not a valid one."""
    v = refang(value).strip().strip("\"'")
    if not v:
        return None
    if kind == "domain":
        if "://" in v:
            v = urlsplit(v).hostname or ""
        v = dom.to_ascii(v.lstrip("*.").rstrip(".").lower())
        return v if _DOMAIN.match(v) else None
    if kind == "url":
        return normalise_url(v) if "." in v else None
    if kind == "sender":
        v = v.lower().strip("<>")
        if v.startswith("@"):
            d = normalise("domain", v[1:])
            return f"@{d}" if d else None
        local, at, d = v.rpartition("@")
        if not at or not local:
            return None
        dn = normalise("domain", d)
        return f"{local}@{dn}" if dn else None
    if kind == "ip":
        try:
            if "/" in v:
                net = ipaddress.ip_network(v, strict=False)
                return str(net.network_address) if net.num_addresses == 1 else str(net)
            return str(ipaddress.ip_address(v.strip("[]")))
        except ValueError:
            return None
    if kind == "sha256":
        v = v.lower()
        return v if len(v) == 64 and _HEX.match(v) else None
    return None


def too_wide(kind: str, value: str) -> str:
    """Why a normalised indicator names too much to list ("0.0.0.0/0 is wider than /8"), or ""."""
    if kind != "ip" or "/" not in value:
        return ""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ""
    widest = WIDEST_PREFIX[net.version]
    return f"{net} is wider than /{widest}" if net.prefixlen < widest else ""


def guess_kind(value: str) -> str | None:
    """The kind of an unlabelled value (a 64-hex hash, a URL, an address, an IP, a domain)."""
    v = refang(value).strip()
    low = v.lower()
    if _HEX.match(low):
        return "sha256" if len(low) == 64 else None  # MD5/SHA-1 are not used
    if "://" in v or (low.startswith("www.") and "/" in v):
        return "url"
    if "@" in v:
        return "sender"
    if normalise("ip", v) is not None:
        return "ip"
    if "/" in v and normalise("domain", v.split("/", 1)[0]):
        return "url"
    if normalise("domain", v) is not None:
        return "domain"
    return None


def kind_from_filename(path: Path) -> str | None:
    """The kind a list file holds, from words in its name: 'phish-domains.txt', 'bad_ips.list', 'hashes.txt'."""
    words = [w for w in re.split(r"[^a-z0-9]+", path.stem.lower()) if w]
    table = {
        "domain": "domain", "domains": "domain", "hosts": "domain", "hostnames": "domain",
        "url": "url", "urls": "url", "links": "url",
        "sender": "sender", "senders": "sender", "email": "sender", "emails": "sender", "addresses": "sender",
        "ip": "ip", "ips": "ip", "ipv4": "ip", "ipv6": "ip", "cidr": "ip", "cidrs": "ip",
        "sha256": "sha256", "hash": "sha256", "hashes": "sha256", "sha256s": "sha256",
    }  # fmt: skip
    for w in words:
        if w in table:
            return table[w]
    return None


def _make(kind: str | None, value: str, file: str, ref: str, source: str) -> Indicator | None:
    if kind is None:
        kind = guess_kind(value)
    kind = KIND_ALIASES.get(kind or "", kind)
    if kind not in KINDS:
        return None
    norm = normalise(kind, value)
    if norm is None:
        return None
    return Indicator(kind=kind, value=norm, file=file, ref=ref, source=source)


# -- formats ---------------------------------------------------------------------------------


def load_plain(text: str, path: Path) -> list[Indicator]:
    """One value per line, '# comments'; the kind from the file name, a 'kind:value' prefix, or the value itself."""
    default = kind_from_filename(path)
    out: list[Indicator] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("http") else raw.split(" #", 1)[0].strip()
        if not line:
            continue
        kind: str | None = default
        value = line.split()[0] if " " in line or "\t" in line else line
        prefix, sep, rest = line.partition(":")
        if sep and prefix.strip().lower() in KIND_ALIASES and not rest.startswith("//"):
            kind, value = KIND_ALIASES[prefix.strip().lower()], rest.strip()
        if kind == default and "://" in value:
            kind = "url"  # a URL in a domain list lists that URL, not its whole host
        ind = _make(kind, value, str(path), f"line {n}", "")
        if ind is None and kind is default and default is not None:
            ind = _make(None, value, str(path), f"line {n}", "")  # a stray value of another kind
        if ind is not None:
            out.append(ind)
    return out


def load_csv(text: str, path: Path) -> list[Indicator]:
    """Rows of kind,value[,source]; a header row naming those columns (in any order) is recognised."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    ki, vi, si = 0, 1, 2
    start = 0
    if any(h in ("kind", "type") for h in header) and any(h in ("value", "indicator", "ioc") for h in header):
        ki = next(i for i, h in enumerate(header) if h in ("kind", "type"))
        vi = next(i for i, h in enumerate(header) if h in ("value", "indicator", "ioc"))
        si = next((i for i, h in enumerate(header) if h in ("source", "list", "feed", "comment", "description")), -1)
        start = 1
    out: list[Indicator] = []
    for n, row in enumerate(rows[start:], start + 1):
        if not row or row[0].lstrip().startswith("#") or len(row) <= max(ki, vi):
            continue
        source = row[si].strip() if 0 <= si < len(row) else ""
        kind = row[ki].strip().lower()
        ind = _make(KIND_ALIASES.get(kind, kind), row[vi], str(path), f"line {n}", source)
        if ind is not None:
            out.append(ind)
    return out


_MISP_TYPES = {
    "domain": ("domain",), "hostname": ("domain",), "url": ("url",), "uri": ("url",),
    "ip-src": ("ip",), "ip-dst": ("ip",), "ip-src|port": ("ip",), "ip-dst|port": ("ip",),
    "domain|ip": ("domain", "ip"), "hostname|port": ("domain",),
    "email-src": ("sender",), "email": ("sender",), "email-reply-to": ("sender",),
    "sha256": ("sha256",), "filename|sha256": (None, "sha256"), "malware-sample": (None,),
}  # fmt: skip


def _misp_attributes(event: dict[str, Any]) -> list[dict[str, Any]]:
    attrs = [a for a in event.get("Attribute", []) or [] if isinstance(a, dict)]
    for obj in event.get("Object", []) or []:
        if isinstance(obj, dict):
            attrs.extend(a for a in obj.get("Attribute", []) or [] if isinstance(a, dict))
    return attrs


def load_misp(doc: Any, path: Path) -> list[Indicator]:
    """MISP events (one event, a list, or a REST 'response'); attributes marked to_ids=false are context, not indicators."""
    events: list[dict[str, Any]] = []
    items = doc.get("response", [doc]) if isinstance(doc, dict) else doc
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            ev = item.get("Event", item)
            if isinstance(ev, dict):
                events.append(ev)
    out: list[Indicator] = []
    for ev in events:
        info = str(ev.get("info", "") or "")
        for attr in _misp_attributes(ev):
            if attr.get("to_ids") in (False, "0", 0) or attr.get("deleted") in (True, "1", 1):
                continue
            kinds = _MISP_TYPES.get(str(attr.get("type", "")))
            if not kinds:
                continue
            values = str(attr.get("value", "")).split("|")
            ref = f"attribute {attr.get('uuid') or attr.get('id') or ''}".strip()
            for kind, value in zip(kinds, values, strict=False):
                if kind is None:
                    continue
                ind = _make(kind, value, str(path), ref, info)
                if ind is not None:
                    out.append(ind)
    return out


_STIX_TERM = re.compile(
    r"(?<![a-z0-9-])(?P<obj>[a-z0-9-]+):(?P<path>[A-Za-z0-9_.'\"-]+)\s*(?:=|LIKE)\s*'(?P<val>(?:[^'\\]|\\.)*)'"
)


def _stix_kind(obj: str, path: str) -> str | None:
    p = path.replace("'", "").replace('"', "").lower()
    if obj == "domain-name" and p == "value":
        return "domain"
    if obj == "url" and p == "value":
        return "url"
    if obj in ("ipv4-addr", "ipv6-addr") and p == "value":
        return "ip"
    if obj == "email-addr" and p == "value":
        return "sender"
    if obj == "email-message" and p in ("from_ref.value", "sender_ref.value"):
        return "sender"
    if obj in ("file", "artifact") and p in ("hashes.sha-256", "hashes.sha256"):
        return "sha256"
    return None


def _expired(valid_until: Any) -> bool:
    if not isinstance(valid_until, str) or not valid_until:
        return False
    try:
        return datetime.fromisoformat(valid_until.replace("Z", "+00:00")) < datetime.now(UTC)
    except ValueError:
        return False


def load_stix(doc: dict[str, Any], path: Path) -> list[Indicator]:
    """Indicators of a STIX 2.1 bundle whose pattern compares a supported observable (revoked/expired ones skipped)."""
    out: list[Indicator] = []
    for obj in doc.get("objects", []) or []:
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        if obj.get("revoked") or _expired(obj.get("valid_until")):
            continue
        if obj.get("pattern_type", "stix") != "stix":
            continue
        name = str(obj.get("name", "") or "")
        for m in _STIX_TERM.finditer(str(obj.get("pattern", ""))):
            kind = _stix_kind(m.group("obj"), m.group("path"))
            if kind is None:
                continue
            value = m.group("val").replace("\\'", "'").replace("\\\\", "\\")
            ind = _make(kind, value, str(path), str(obj.get("id", "")), name)
            if ind is not None:
                out.append(ind)
    return out


def load_json(text: str, path: Path) -> list[Indicator]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        return load_stix(doc, path)
    if isinstance(doc, dict | list):
        return load_misp(doc, path)
    raise LoadError(f"{path}: JSON is neither a STIX bundle nor MISP events")


def load_file(path: str | Path, skipped: list[str] | None = None) -> list[Indicator]:
    """Indicators of one file, by its format (JSON: STIX or MISP; .csv; anything else: a plain list).
    Networks wider than WIDEST_PREFIX are left out: each is added to `skipped` ("line 3: 0.0.0.0/0
    is wider than /8"), or logged when the caller gives no list."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise LoadError(f"{p}: {exc.strerror or exc}") from exc
    suffix = p.suffix.lower()
    stripped = text.lstrip()
    if suffix in (".json", ".stix", ".misp") or (suffix not in (".csv", ".txt") and stripped[:1] in ("{", "[")):
        found = load_json(text, p)
    elif suffix == ".csv":
        found = load_csv(text, p)
    else:
        found = load_plain(text, p)
    out: list[Indicator] = []
    for ind in found:
        why = too_wide(ind.kind, ind.value)
        if not why:
            out.append(ind)
        elif skipped is not None:
            skipped.append(f"{ind.ref}: {why}" if ind.ref else why)
        else:
            log.warning("intel: %s: %s; skipped", ind.where(), why)
    return out
