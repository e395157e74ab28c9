"""A tiny authoritative DNS server on loopback (dnslib) serving the records a test puts in it."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from mailmoat.config import DnsSettings


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    """Records by (name, type); names without a trailing dot, lower-case."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rtype: str, value: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rtype.upper()), []).append(value)

    def txt(self, name: str, value: str) -> None:
        self.add(name, "TXT", value)

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.queries.append((qname, qtype))
        values = self.records.get((qname, qtype), [])
        for v in values:
            if qtype == "TXT":
                chunks = [v[i : i + 255] for i in range(0, len(v), 255)] or [""]
                rdata: Any = TXT(chunks)
            elif qtype == "A":
                rdata = A(v)
            elif qtype == "AAAA":
                rdata = AAAA(v)
            elif qtype == "MX":
                rdata = MX(v)
            else:
                continue
            reply.add_answer(RR(request.q.qname, QTYPE.reverse[qtype], rdata=rdata, ttl=60))
        if not values and not any(n == qname for n, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@dataclass
class LoopbackDns:
    zone: Zone
    port: int

    def settings(self, timeout: float = 2.0) -> DnsSettings:
        return DnsSettings(nameservers=["127.0.0.1"], port=self.port, timeout=timeout)


@contextmanager
def dns_server(zone: Zone | None = None) -> Iterator[LoopbackDns]:
    """Serve `zone` over UDP on a free loopback port for the duration of the block."""
    zone = zone or Zone()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
    server.start_thread()
    try:
        yield LoopbackDns(zone=zone, port=int(server.server.server_address[1]))
    finally:
        server.stop()
        server.server.server_close()


@contextmanager
def silent_dns() -> Iterator[int]:
    """A UDP port that receives queries and never answers (to test time-outs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@dataclass
class DkimKey:
    private_pem: bytes
    public_b64: str

    @property
    def record(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_b64}"


def new_dkim_key(bits: int = 1024) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(private_pem=pem, public_b64=base64.b64encode(der).decode())
