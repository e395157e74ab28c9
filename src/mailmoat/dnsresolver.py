"""DNS resolver built from `settings.dns`: the only way mailmoat reaches DNS, so tests can point it at loopback."""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.rdata
import dns.resolver

from mailmoat.config import ConfigError, DnsSettings


class DnsTempError(Exception):
    """A lookup that could not be answered now (time-out, no server reachable): a temporary error."""


def build_resolver(settings: DnsSettings) -> dns.resolver.Resolver | None:
    """A resolver for the configured nameservers, or None when none are configured (checks are then skipped)."""
    if not settings.nameservers:
        return None
    resolver = dns.resolver.Resolver(configure=False)
    servers: list[str] = []
    for ns in settings.nameservers:
        try:
            servers.append(str(ipaddress.ip_address(ns.strip())))
        except ValueError as exc:
            raise ConfigError(f"dns.nameservers: {ns!r} is not an IP address") from exc
    resolver.nameservers = servers
    resolver.port = settings.port
    resolver.timeout = settings.timeout
    resolver.lifetime = settings.timeout
    # Cache answers across messages: the same sender domains recur all day long.
    resolver.cache = dns.resolver.LRUCache(20_000)
    return resolver


def resolve(resolver: dns.resolver.Resolver, name: str, rdtype: str, lifetime: float | None = None) -> list[dns.rdata.Rdata]:
    """Records of one type; [] when the name or type does not exist; DnsTempError when DNS did not answer."""
    try:
        answer = resolver.resolve(name, rdtype, lifetime=lifetime, raise_on_no_answer=False, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
        raise DnsTempError(f"{name} {rdtype}: {exc}") from exc
    except dns.exception.DNSException as exc:
        # Bad names (too long, empty labels) behave like names that do not exist.
        if isinstance(exc, dns.name.NameTooLong | dns.name.EmptyLabel | dns.name.LabelTooLong):
            return []
        raise DnsTempError(f"{name} {rdtype}: {exc}") from exc
    if answer.rrset is None:
        return []
    return list(answer.rrset)


def txt_records(resolver: dns.resolver.Resolver, name: str, lifetime: float | None = None) -> list[str]:
    """TXT records of a name, each with its character-strings joined (as RFC 7208/6376/7489 require)."""
    out: list[str] = []
    for rd in resolve(resolver, name, "TXT", lifetime):
        strings = getattr(rd, "strings", ())
        out.append(b"".join(strings).decode("utf-8", "replace"))
    return out


__all__ = ["DnsTempError", "build_resolver", "resolve", "txt_records"]
