"""aiosmtpd listeners: inbound MX (protected domains only) and the internal relay for the mail system."""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import ipaddress
import logging
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from mailmoat.config import ConfigError, Settings, parse_hostport
from mailmoat.ingest.spool import Spool, SpoolRef
from mailmoat.model import Action, Direction, Envelope

log = logging.getLogger(__name__)

INBOUND = "inbound"
INTERNAL = "internal"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Dispatcher(Protocol):
    """Hands spooled messages to the processing workers."""

    def submit(self, ref: SpoolRef) -> None:
        """Process after the 250 (the usual case)."""

    async def submit_in_session(self, ref: SpoolRef, timeout: float) -> Action | None:
        """Scan before answering; the verdict's action, or None when it is not known in time."""


def norm_domain(domain: str) -> str:
    """Lower-case ASCII form of a domain, so that "例子.cn" and "xn--fsqu00a.cn" compare equal."""
    d = domain.strip().rstrip(".").lower()
    try:
        return d.encode("idna").decode("ascii")
    except UnicodeError:
        return d


def domain_of(address: str) -> str:
    return norm_domain(address.rpartition("@")[2]) if "@" in address else ""


def classify(mail_from: str, rcpt_tos: Iterable[str], domains: Iterable[str]) -> Direction:
    """Direction of a message from the mail system: outbound as soon as one recipient is outside."""
    protected = {norm_domain(d) for d in domains}
    if any(domain_of(r) not in protected for r in rcpt_tos):
        return Direction.OUTBOUND
    return Direction.INTERNAL


def parse_networks(entries: Iterable[str]) -> list[Network]:
    nets: list[Network] = []
    for e in entries:
        try:
            nets.append(ipaddress.ip_network(e.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"server.relay_networks: bad network {e!r}") from exc
    return nets


def ip_in(ip: str, networks: Iterable[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Server context for STARTTLS when a certificate is configured."""
    cert, key = settings.server.tls_cert, settings.server.tls_key
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert/tls_key: cannot load {cert}: {exc}") from exc
    return ctx


def _clean(text: str, limit: int = 200) -> str:
    """Peer-supplied text made safe for a header: printable ASCII, bounded."""
    out = "".join(ch if 32 < ord(ch) < 127 else "?" for ch in text)
    return out[:limit] or "unknown"


def received_header(envelope: Envelope, hostname: str, protocol: str, eol: bytes) -> bytes:
    peer = envelope.peer_ip
    literal = f"[IPv6:{peer}]" if ":" in peer else f"[{peer}]"
    first = f"Received: from {_clean(envelope.helo)} ({literal})"
    second = f"\tby {hostname} (mailmoat) with {protocol} id {envelope.id}"
    if len(envelope.rcpt_tos) == 1:
        second += f"\r\n\tfor <{_clean(envelope.rcpt_tos[0], 320)}>"
    line = f"{first}\r\n{second};\r\n\t{email.utils.formatdate(envelope.received_at, localtime=True)}\r\n"
    return line.encode("ascii", "replace").replace(b"\r\n", eol)


# The longest local part and domain taken, in octets. RFC 5321 4.5.3.1 names 64 for a local part
# but asks servers to take longer ones where they can, and real reply addresses are longer
# (reply+<token>@reply.github.com, about a hundred): a local part is refused only past 255, where
# no file name can hold it. A domain is at most 255 (4.5.3.1.2).
MAX_LOCAL_PART = 255
MAX_DOMAIN = 255
# No form of an RFC 5321 address holds a control character, not even a quoted local part
# (qtextSMTP and quoted-pairSMTP are %d32-126); a NUL or ESC in a mailbox name only does harm.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def address_refusal(address: str, smtputf8: bool, *, sender: bool) -> str | None:
    """The reply refusing an envelope address the gateway could not use as it was sent, or None.

    aiosmtpd decodes command arguments as UTF-8 with surrogateescape, so bytes that are not UTF-8
    arrive as lone surrogates: such an address cannot be stored, shown or matched as the client
    wrote it (the record said `al?ice`, the Maildir `al\xffice`), so it is refused at the door.
    """
    if address == "<>":  # the null sender
        return None
    status = "5.1.7" if sender else "5.1.3"  # RFC 3463: bad sender's / destination mailbox syntax
    what = "sender" if sender else "recipient"
    if _CONTROL.search(address):
        return f"553 {status} Bad {what} address syntax: control character"
    if not address.isascii() and not smtputf8:
        return f"553 5.6.7 Non-ASCII {what} address requires SMTPUTF8"  # RFC 6531 3.5
    try:
        octets = address.encode("utf-8")
    except UnicodeEncodeError:
        return f"553 {status} Bad {what} address syntax: not valid UTF-8"
    if sender:
        # Long senders are left alone: bounce-address schemes (VERP, SRS, BATV) exceed 64 octets,
        # and the sender names no file here.
        return None
    local, _, domain = octets.rpartition(b"@")
    if len(local) > MAX_LOCAL_PART or len(domain) > MAX_DOMAIN:
        # 501, not 553: RFC 5321 4.5.3.1.10 names "501 Path too long" for a limit exceeded, and
        # the address is too long rather than a mailbox name that is not allowed.
        return f"501 5.1.3 {'Local part' if len(local) > MAX_LOCAL_PART else 'Domain'} of the recipient address too long"
    return None


# `<local@domain>` in its plainest form (dot-atoms of common characters), optionally followed by
# parameters: what nearly every MAIL FROM and RCPT TO looks like. Anything else (quoting,
# comments, source routes, address literals, `<>`) goes to aiosmtpd's full RFC 5322 parser.
_PLAIN_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
)


class _FewNames:
    """aiosmtpd finds its hooks by scanning dir() of the protocol and of the handler for every new
    connection (`inspect.getmembers`, which reads every attribute): list only the names it looks for."""

    _SCANNED: ClassVar[tuple[str, ...]] = ()
    _names: ClassVar[dict[type, list[str]]] = {}

    def __dir__(self) -> list[str]:
        cls = type(self)
        names = _FewNames._names.get(cls)
        if names is None:
            names = _FewNames._names[cls] = [n for n in dir(cls) if n.startswith(self._SCANNED)]
        return names


class ConnectionTracker:
    """Open connections per client IP for one listener."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        n = self.open.get(ip, 0)
        if self.limit > 0 and n >= self.limit:
            return False
        self.open[ip] = n + 1
        return True

    def release(self, ip: str) -> None:
        n = self.open.get(ip, 0) - 1
        if n > 0:
            self.open[ip] = n
        else:
            self.open.pop(ip, None)


class GatewaySMTP(_FewNames, SMTP):
    """aiosmtpd's SMTP with a per-IP connection limit, a network check and a configurable line limit."""

    _SCANNED = ("smtp_", "auth_")

    def __init__(
        self,
        handler: IngestHandler,
        *,
        max_line_length: int,
        tracker: ConnectionTracker,
        allowed: list[Network] | None,
        **kwargs: Any,
    ) -> None:
        # aiosmtpd sizes its StreamReader from this attribute, so it must be set before __init__.
        self.line_length_limit = max(1001, max_line_length)
        super().__init__(handler, **kwargs)
        self._tracker = tracker
        self._allowed = allowed
        self._peer_ip = ""
        self._tracked = False
        self._seen = False
        self._refusal = ""
        self._answering = False  # the message is whole and being accepted: its reply is owed
        self._half_closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = not self._seen  # called again after STARTTLS for the same client
        self._seen = True
        super().connection_made(transport)
        if not first:
            return
        peer = transport.get_extra_info("peername")
        self._peer_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if self._allowed is not None and not ip_in(self._peer_ip, self._allowed):
            self._refusal = f"554 5.7.1 {self._peer_ip} is not allowed to relay through this listener"
        elif not self._tracker.acquire(self._peer_ip):
            self._refusal = f"421 4.7.0 Too many connections from {self._peer_ip}, try again later"
        else:
            self._tracked = True

    def connection_lost(self, error: Exception | None) -> None:
        if self._tracked:
            self._tracked = False
            self._tracker.release(self._peer_ip)
        super().connection_lost(error)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address and parameters of MAIL FROM/RCPT TO: plain `<local@domain>` is read here
        (aiosmtpd's RFC 5322 parser costs tens of microseconds per address), anything else by it."""
        m = _PLAIN_PATH.match(arg)
        tail = arg[m.end() :] if m else ""
        if m is None or "(" in tail or "\r" in tail or "\n" in tail:
            return super()._getaddr(arg)
        addr = m.group(1)
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, tail.lstrip(" \t")

    def eof_received(self) -> bool | None:
        # A client that closes its side right after the final "." (`nc -N`, some scripts) still
        # reads the reply, and sends the message again if none comes: the message being accepted
        # is finished and answered, and the session ends after it. Any other EOF ends it at once.
        if self._answering and self.session is not None and self.session.ssl is None:
            self._half_closed = True
            return asyncio.StreamReaderProtocol.eof_received(self)  # EOF to the reader; the write side stays open
        return super().eof_received()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if command != "DATA":
            return await super()._call_handler_hook(command, *args)
        self._answering = True
        return await super()._call_handler_hook(command, *args)

    async def smtp_DATA(self, arg: str) -> None:
        try:
            await super().smtp_DATA(arg)
        finally:
            self._answering = False
        if self._half_closed:
            # Answered; nothing more can come. End the session as aiosmtpd ends one at EOF.
            raise asyncio.CancelledError

    async def _handle_client(self) -> None:
        if self._refusal:
            log.info("refused connection from %s: %s", self._peer_ip, self._refusal)
            await self.push(self._refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


class IngestHandler(_FewNames):
    """aiosmtpd hooks: recipient checks, then spool durably before the 250."""

    _SCANNED = ("handle_", "auth_")

    def __init__(self, settings: Settings, spool: Spool, dispatcher: Dispatcher, listener: str) -> None:
        self.settings = settings
        self.spool = spool
        self.dispatcher = dispatcher
        self.listener = listener
        self.domains = {norm_domain(d) for d in settings.server.domains}
        self.hostname = settings.server.hostname

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: SMTPEnvelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads commands strictly in order, so pipelined commands are safe to announce.
        out = [r for r in responses if not r.startswith("250-AUTH")]  # no AUTH is configured
        out.insert(len(out) - 1, "250-PIPELINING")
        return out

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: SMTPEnvelope, address: str, mail_options: list[str]
    ) -> str:
        # aiosmtpd has set envelope.smtp_utf8 from the parameters by now; with this hook it leaves
        # recording the sender to us.
        refusal = address_refusal(address, envelope.smtp_utf8, sender=True)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: SMTPEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.settings.server.max_recipients:
            return "452 4.5.3 Too many recipients"
        refusal = address_refusal(address, envelope.smtp_utf8, sender=False)
        if refusal:
            return refusal
        domain = domain_of(address)
        if not domain or not address.rpartition("@")[0]:
            return "550 5.1.3 Bad recipient address syntax"
        if self.listener == INBOUND and domain not in self.domains:
            return "550 5.7.1 Relaying denied: this gateway does not accept mail for that domain"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    # aiosmtpd reads this hook's signature for every new connection; computing it from the code
    # each time cost more than the rest of its set-up.
    handle_EHLO.__signature__ = inspect.signature(handle_EHLO)  # type: ignore[attr-defined]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SMTPEnvelope) -> str:
        original = envelope.original_content
        body = original if isinstance(original, bytes) else bytes(original or b"")
        peer = session.peer
        env = Envelope(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            peer_ip=str(peer[0]) if isinstance(peer, tuple) and peer else "",
            helo=session.host_name or "",
            direction=Direction.INBOUND
            if self.listener == INBOUND
            else classify(envelope.mail_from or "", envelope.rcpt_tos, self.domains),
            listener=self.listener,
        )
        if session.ssl is not None:
            protocol = "ESMTPS"
        elif session.extended_smtp:
            protocol = "ESMTP"
        else:
            protocol = "SMTP"
        eol = b"\r\n" if b"\r\n" in body[:4096] or not body else b"\n"
        raw = received_header(env, self.hostname, protocol, eol) + body
        env.size = len(raw)
        try:
            ref = await asyncio.to_thread(self.spool.write, env, raw)
        except OSError:
            log.exception("cannot spool message from %s", env.peer_ip)
            return "451 4.3.0 Temporary failure storing the message, try again later"

        if self.settings.policy.reject_in_session:
            timeout = min(max(30.0, self.settings.policy.analyzer_timeout * 3), self.settings.server.smtp_timeout * 0.8)
            action = await self.dispatcher.submit_in_session(ref, timeout)
            if action is Action.REJECT:
                return "550 5.7.1 Message rejected by content policy"
            if action is Action.TEMPFAIL:
                return "451 4.7.1 Message could not be checked now, try again later"
        else:
            self.dispatcher.submit(ref)
        return f"250 2.0.0 Ok: queued as {env.id}"


@dataclass
class Listening:
    """A running listener and the address it is bound to."""

    name: str
    host: str
    port: int
    server: asyncio.Server


async def start_listener(settings: Settings, spool: Spool, dispatcher: Dispatcher, name: str, address: str) -> Listening:
    """Bind one listener (port 0 picks a free port; read it back from the result)."""
    host, port = parse_hostport(address)
    handler = IngestHandler(settings, spool, dispatcher, name)
    tracker = ConnectionTracker(settings.server.max_connections_per_ip)
    allowed = parse_networks(settings.server.relay_networks) if name == INTERNAL else None
    ctx = tls_context(settings)
    loop = asyncio.get_running_loop()

    def factory() -> GatewaySMTP:
        return GatewaySMTP(
            handler,
            max_line_length=settings.server.max_line_length,
            tracker=tracker,
            allowed=allowed,
            hostname=settings.server.hostname,
            ident="ESMTP mailmoat",
            data_size_limit=settings.server.max_message_size or None,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=ctx,
            timeout=float(settings.server.smtp_timeout),
            loop=loop,
        )

    server = await loop.create_server(factory, host=host, port=port)
    sock = server.sockets[0].getsockname()
    return Listening(name=name, host=str(sock[0]), port=int(sock[1]), server=server)
