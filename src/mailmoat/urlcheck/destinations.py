"""Where a message sends its reader, as the store records it: the link destinations that the wave and condemned-link signs compare."""

from __future__ import annotations

from mailmoat.model import Message
from mailmoat.store.db import link_and_targets, url_domain_of, url_host_of
from mailmoat.urlcheck import domains as dom
from mailmoat.urlcheck.links import free_hosting, shared_page
from mailmoat.urlcheck.lookalike import DomainCatalog

MAX_DESTINATIONS = 10  # link destinations asked about per message
MAX_URLS = 400  # links looked at per message, as the URL analyzer does
# Images and style sheets come from CDNs that every newsletter shares; what the reader is sent to counts.
NOT_A_DESTINATION = ("src", "css")
# Indicator kinds that name a destination.
KINDS = ("url_domain", "url_host", "url_page")


def link_destinations(msg: Message, sender: str, catalog: DomainCatalog) -> list[tuple[str, str]]:
    """(indicator kind, value) of each place the message's links send the reader (`_destination`),
    at most MAX_DESTINATIONS of them."""
    out: dict[tuple[str, str], None] = {}
    for u in msg.urls[:MAX_URLS]:
        if u.source in NOT_A_DESTINATION or not u.host:
            continue
        host = u.host.rstrip(".").lower()
        # The links the store records (a click tracker's or an open redirect's target is where the
        # reader really goes), with the values the history is asked about.
        for url, lhost, reg in link_and_targets(u.url, host, url_domain_of(u)):
            dest = _destination(lhost, reg, shared_page(lhost, url), sender, catalog)
            if dest is not None:
                out[dest] = None
                if len(out) >= MAX_DESTINATIONS:
                    return list(out)
    return list(out)


def recorded_destination(kind: str, value: str, sender: str, catalog: DomainCatalog) -> tuple[str, str] | None:
    """The destination an indicator row of a recorded message names, by the rules of
    `link_destinations` (None for a row they leave out, or one that another row of the same link
    names: a subdomain's host row beside its domain row, a hosting platform's own domain)."""
    value = value.strip()
    if kind == "url_page":
        host = value.partition("/")[0].partition("?")[0]
        return _destination(host, dom.registrable(host), value, sender, catalog)
    host = value.lower()
    if kind == "url_domain":
        # A link to a page on a hosting platform records the platform's domain too; its host row names it.
        return None if free_hosting(host) else _destination(host, host, "", sender, catalog)
    if kind == "url_host":
        dest = _destination(host, dom.registrable(host), "", sender, catalog)
        return dest if dest is not None and dest[0] == "url_host" else None
    return None


def _destination(host: str, reg: str, page: str, sender: str, catalog: DomainCatalog) -> tuple[str, str] | None:
    """Where a link to `host` (registrable domain `reg`; `page` on a host everyone shares, or '')
    sends the reader: the registrable domain; for a page on a hosting platform (`evil-login.web.app`)
    the host, since the platform's own domain is everyone's; for a form or file on a shared host (a
    Google Form, a Dropbox link) the page itself. The sender's own domain (`sender`, registrable),
    the organisation's, well-known brands' and intranet addresses are left out, but a brand's
    shared host is not, nor a tenant's page on a brand's platform (a bucket on Amazon S3, a
    Microsoft storage blob): the form or the page there is the attacker's."""
    if not reg or reg == sender or not _is_destination(host):
        return None
    if page:
        return ("url_page", page)
    platform = free_hosting(host)
    tenant = url_host_of(host, reg) if platform and platform != host else ""
    if tenant:
        return ("url_host", tenant)
    if catalog.is_legit(host) or dom.is_internal_address(host):
        return None
    return ("url_domain", reg)


def _is_destination(host: str) -> bool:
    """A name a browser would look up or an address it would open: a typo such as
    "http://http//example.com" gives the single-label host "http", which leads nowhere."""
    return "." in host or dom.is_ip(host)
