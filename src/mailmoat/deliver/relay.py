"""Relay copies to the mail system over SMTP (aiosmtplib) or LMTP, one transaction per copy on one connection."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiosmtplib

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class RelayConfigError(ValueError):
    """A relay_to value that cannot be used."""


@dataclass(frozen=True)
class RelayTarget:
    scheme: str  # "smtp" or "lmtp"
    host: str = ""
    port: int = 0
    path: str = ""  # unix socket (lmtp:///run/dovecot/lmtp)

    @classmethod
    def parse(cls, url: str) -> RelayTarget:
        """`smtp://host:port`, `lmtp://host:port` or `lmtp:///path/to/socket`."""
        u = urlsplit(url.strip())
        scheme = u.scheme.lower()
        if scheme not in ("smtp", "lmtp"):
            raise RelayConfigError(f"relay_to must start with smtp:// or lmtp://, got {url!r}")
        try:
            port = u.port
        except ValueError as exc:
            raise RelayConfigError(f"bad port in relay_to {url!r}") from exc
        if not u.hostname:
            if scheme == "lmtp" and u.path:
                return cls(scheme, path=u.path)
            raise RelayConfigError(f"relay_to {url!r} names no host")
        return cls(scheme, u.hostname, port or (25 if scheme == "smtp" else 24))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}" if self.host else f"{self.scheme}://{self.path}"


@dataclass
class Copy:
    recipient: str
    data: bytes


@dataclass
class Attempt:
    """The downstream's answer for one copy; code 0 means no answer (connection failed)."""

    recipient: str
    code: int
    reply: str
    lost: bool = False  # the connection ended before this copy was answered (or with 421)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def temporary(self) -> bool:
        return not self.ok and not self.permanent

    @property
    def enhanced_status(self) -> str:
        m = _ENHANCED.search(self.reply)
        if m:
            return m.group(1)
        return "5.0.0" if self.permanent else "4.0.0"


def _text(code: int, message: str) -> str:
    return f"{code} {message}".strip().replace("\r", " ").replace("\n", " ")


def _needs_utf8(*values: str) -> bool:
    return any(not v.isascii() for v in values)


def _is_8bit(data: bytes) -> bool:
    return not data.isascii()


async def send(
    target: RelayTarget,
    mail_from: str,
    copies: list[Copy],
    *,
    helo: str,
    timeout: float = 60.0,
    connect_timeout: float = 30.0,
    connections: int = 4,
) -> list[Attempt]:
    """Send each copy in its own transaction; one Attempt per copy, in order.

    Every copy has its own tracking header, so one message to many recipients is many
    transactions: large fan-outs are spread over up to `connections` parallel connections
    (the downstream's fsyncs overlap), each reused for its share of the copies.
    """
    if not copies:
        return []
    n = max(1, min(connections, len(copies) // _PER_CONNECTION_MIN))
    if n == 1:
        return await _send_serial(target, mail_from, copies, helo, timeout, connect_timeout)
    size = -(-len(copies) // n)
    chunks = [copies[i : i + size] for i in range(0, len(copies), size)]
    results = await asyncio.gather(*(_send_serial(target, mail_from, c, helo, timeout, connect_timeout) for c in chunks))
    return [a for part in results for a in part]


_PER_CONNECTION_MIN = 8  # below this many copies per connection, one connection is enough


async def _send_serial(
    target: RelayTarget, mail_from: str, copies: list[Copy], helo: str, timeout: float, connect_timeout: float
) -> list[Attempt]:
    """Copies over one connection; when the server ends it part-way (servers limit messages per
    connection), the rest goes over a new one as long as the previous one made progress."""
    out: list[Attempt] = []
    pending = copies
    session = _send_lmtp if target.scheme == "lmtp" else _send_smtp
    while pending:
        res = await session(target, mail_from, pending, helo=helo, timeout=timeout, connect_timeout=connect_timeout)
        cut = next((i for i, a in enumerate(res) if a.lost), None)
        if cut is None:
            return out + res
        out += res[:cut]
        if cut == 0:  # no progress on a fresh connection: leave the rest to the retry queue
            return out + res
        pending = pending[cut:]
    return out


async def _send_smtp(
    target: RelayTarget, mail_from: str, copies: list[Copy], *, helo: str, timeout: float, connect_timeout: float
) -> list[Attempt]:
    client = aiosmtplib.SMTP(
        hostname=target.host, port=target.port, local_hostname=helo, timeout=timeout, start_tls=False
    )
    out: list[Attempt] = []
    try:
        await client.connect(timeout=connect_timeout)
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if exc.code < 500:
                raise
            await client.helo()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        reply = _failure_text(exc, f"cannot connect to {target}")
        code = exc.code if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400 else 0
        await _close_smtp(client)
        return [Attempt(c.recipient, code, reply) for c in copies]
    try:
        for i, c in enumerate(copies):
            try:
                out.append(await _smtp_one(client, mail_from, c))
            except aiosmtplib.SMTPResponseException as exc:
                out.append(Attempt(c.recipient, exc.code, _text(exc.code, exc.message), lost=exc.code == 421))
                if exc.code == 421:  # the server is closing this connection
                    out.extend(Attempt(x.recipient, 0, "connection closed by the server (421)", True) for x in copies[i + 1 :])
                    break
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await client.rset()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                reply = _failure_text(exc, f"connection to {target} lost")
                out.extend(Attempt(x.recipient, 0, reply, True) for x in copies[i:])
                break
    finally:
        await _close_smtp(client)
    return out


async def _smtp_one(client: aiosmtplib.SMTP, mail_from: str, c: Copy) -> Attempt:
    options: list[str] = []
    encoding = "ascii"
    if _needs_utf8(mail_from, c.recipient) and client.supports_extension("smtputf8"):
        options.append("SMTPUTF8")
        encoding = "utf-8"
    if _is_8bit(c.data) and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    await client.mail(mail_from, options=options, encoding=encoding)
    await client.rcpt(c.recipient, encoding=encoding)
    resp = await client.data(c.data)
    return Attempt(c.recipient, resp.code, _text(resp.code, resp.message))


async def _close_smtp(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


def _failure_text(exc: BaseException, what: str) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _text(exc.code, exc.message)
    detail = str(exc) or type(exc).__name__
    return f"{what}: {detail}"


# ---------------------------------------------------------------------------------------------
# LMTP (RFC 2033): after DATA the server answers once per accepted recipient. A small client
# of our own reads them all (smtplib.LMTP reads only the first one).


class LmtpError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class LmtpClient:
    """Minimal asyncio LMTP client: LHLO, then transactions with per-recipient DATA replies."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.extensions: set[str] = set()

    async def connect(self, target: RelayTarget, helo: str, connect_timeout: float) -> None:
        if target.path:
            fut = asyncio.open_unix_connection(target.path)
        else:
            fut = asyncio.open_connection(target.host, target.port)
        self.reader, self.writer = await asyncio.wait_for(fut, connect_timeout)
        code, text = await self.reply()
        if code != 220:
            raise LmtpError(code, _text(code, text))
        code, text = await self.command(f"LHLO {helo}")
        if code != 250:
            raise LmtpError(code, _text(code, text))
        self.extensions = {ln.split(" ", 1)[0].upper() for ln in text.splitlines()[1:]}

    async def reply(self) -> tuple[int, str]:
        assert self.reader is not None
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if not raw:
                raise ConnectionError("connection closed by the LMTP server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionError(f"malformed LMTP reply {line!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def command(self, line: str) -> tuple[int, str]:
        assert self.writer is not None
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def transaction(self, mail_from: str, rcpts: list[str], data: bytes) -> dict[str, tuple[int, str]]:
        """Per recipient (code, text); refused recipients get their RCPT reply."""
        assert self.writer is not None
        params = ""
        if _needs_utf8(mail_from, *rcpts) and "SMTPUTF8" in self.extensions:
            params += " SMTPUTF8"
        if _is_8bit(data) and "8BITMIME" in self.extensions:
            params += " BODY=8BITMIME"
        code, text = await self.command(f"MAIL FROM:<{mail_from}>{params}")
        if code != 250:
            await self.command("RSET")
            return {r: (code, text) for r in rcpts}
        results: dict[str, tuple[int, str]] = {}
        accepted: list[str] = []
        for r in rcpts:
            code, text = await self.command(f"RCPT TO:<{r}>")
            if code == 250 or code == 251:
                accepted.append(r)
            else:
                results[r] = (code, text)
        if not accepted:
            await self.command("RSET")
            return results
        code, text = await self.command("DATA")
        if code != 354:
            await self.command("RSET")
            results.update({r: (code, text) for r in accepted})
            return results
        self.writer.write(dot_stuff(data))
        await self.writer.drain()
        for r in accepted:
            results[r] = await self.reply()
        return results

    async def quit(self) -> None:
        if self.writer is None:
            return
        with contextlib.suppress(OSError, ConnectionError, TimeoutError, LmtpError):
            await asyncio.wait_for(self.command("QUIT"), 5)
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
        self.writer = None


def dot_stuff(data: bytes) -> bytes:
    """CRLF line endings, leading dots doubled, terminated by CRLF . CRLF."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


async def _send_lmtp(
    target: RelayTarget, mail_from: str, copies: list[Copy], *, helo: str, timeout: float, connect_timeout: float
) -> list[Attempt]:
    client = LmtpClient(timeout)
    try:
        await client.connect(target, helo, connect_timeout)
    except LmtpError as exc:
        await client.quit()
        code = exc.code if exc.code >= 400 else 0
        return [Attempt(c.recipient, code, exc.text) for c in copies]
    except (OSError, ConnectionError, TimeoutError) as exc:
        await client.quit()
        reply = _failure_text(exc, f"cannot connect to {target}")
        return [Attempt(c.recipient, 0, reply) for c in copies]
    out: list[Attempt] = []
    try:
        for i, c in enumerate(copies):
            try:
                res = await client.transaction(mail_from, [c.recipient], c.data)
            except (OSError, ConnectionError, TimeoutError) as exc:
                reply = _failure_text(exc, f"connection to {target} lost")
                out.extend(Attempt(x.recipient, 0, reply, True) for x in copies[i:])
                break
            code, text = res[c.recipient]
            out.append(Attempt(c.recipient, code, _text(code, text), lost=code == 421))
            if code == 421:
                out.extend(Attempt(x.recipient, 0, "connection closed by the server (421)", True) for x in copies[i + 1 :])
                break
    finally:
        await client.quit()
    return out
