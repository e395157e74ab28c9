"""Domain helpers: registrable domain (offline public suffix list), IDN conversion, parents, IP tests."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

import tldextract

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def to_ascii(host: str) -> str:
    """The A-label (punycode) form of a host name; the input unchanged when it cannot be encoded."""
    host = host.strip().strip(".").lower()
    if host.isascii():
        return host
    labels = []
    for label in host.split("."):
        if label.isascii():
            labels.append(label)
            continue
        try:
            labels.append(label.encode("idna").decode("ascii"))
        except UnicodeError:
            return host
    return ".".join(labels)


def to_unicode(host: str) -> str:
    """The U-label (Unicode) form of a host name, decoding every xn-- label that decodes."""
    host = host.strip().strip(".").lower()
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            try:
                labels.append(label.encode("ascii").decode("idna"))
                continue
            except UnicodeError:
                pass
        labels.append(label)
    return ".".join(labels)


def domain_set(names: Iterable[str]) -> frozenset[str]:
    """Configured domain names in A-label form; entries without a dot ("localhost") are left out."""
    return frozenset(to_ascii(d) for d in names if "." in d)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_INTERNAL_NETS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def is_internal_address(host: str) -> bool:
    """A literal IP address that only the reader's own network reaches (RFC 1918, loopback,
    link-local, unique-local): an intranet server or a router, never a page an outsider hosts."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # Not `is_private`: that also holds the documentation ranges, which stand for outside hosts.
    return ip.is_loopback or ip.is_link_local or any(ip in net for net in _INTERNAL_NETS if net.version == ip.version)


@functools.lru_cache(maxsize=50_000)
def split(host: str) -> tuple[str, str, str]:
    """(subdomain, label, suffix) of a host in A-label form, e.g. ('www', 'example', 'co.uk')."""
    h = to_ascii(host)
    ext = _EXTRACT(h)
    if not ext.suffix and "." in h and not is_ip(h):
        # A name outside the public suffix list (.test, .corp, .internal): its last label acts as the suffix.
        labels = h.split(".")
        return ".".join(labels[:-2]), labels[-2], labels[-1]
    return ext.subdomain, ext.domain, ext.suffix


def registrable(host: str) -> str:
    """The registrable domain (eTLD+1) of a host, or the host itself for IPs and bare suffixes."""
    h = to_ascii(host)
    if not h or is_ip(h):
        return h
    _, label, suffix = split(h)
    if not label:
        return h
    return f"{label}.{suffix}" if suffix else label


def label_of(host: str) -> str:
    """The registrable label of a host: 'paypal' for 'www.paypal.co.uk'."""
    return split(host)[1]


def parents(host: str) -> list[str]:
    """The host and every parent down to its registrable domain, most specific first."""
    h = to_ascii(host)
    reg = registrable(h)
    out = [h]
    while h != reg and "." in h:
        h = h.split(".", 1)[1]
        out.append(h)
    return out


# Listed domains have a few labels; a crafted host of thousands ("www.www.www...") is looked up by
# its last labels only, instead of once per label with a copy of the rest each time.
MAX_LABELS = 12


def last_labels(host: str, n: int = MAX_LABELS) -> str:
    """The host's last `n` labels (the whole host when it has fewer)."""
    if host.count(".") < n:
        return host
    return ".".join(host.rsplit(".", n)[-n:])


def listed_parent(host: str, domains: AbstractSet[str]) -> str:
    """The entry of `domains` that host is or lives under, most specific first ('' when none;
    entries of MAX_LABELS labels at most)."""
    h = last_labels(to_ascii(host))
    while h:
        if h in domains:
            return h
        if "." not in h:
            return ""
        h = h.split(".", 1)[1]
    return ""


def in_domains(host: str, domains: AbstractSet[str]) -> bool:
    """True when host is one of domains or a subdomain of one (of MAX_LABELS labels at most)."""
    return bool(listed_parent(host, domains))
