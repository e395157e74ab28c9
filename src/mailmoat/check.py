"""Is this installation set up right (`mailmoat check`)? Each thing the configuration names is tried, once.

Read-mostly: it creates the data dir and the embedded mailbox root if they are missing (as the
gateway would), writes and removes one probe file there, opens the record without migrating it,
and talks to the mail system, clamd, the DNS servers and the recall backend only to see that they
answer. Each result is ok, warn (works, but not as a site would want) or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mailmoat.config import Settings

TLS_SOON = 14 * 86400.0  # a certificate that ends sooner than this is a warning


@dataclass
class Check:
    name: str
    state: str  # ok, warn, fail
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def data_dir(settings: Settings) -> Check:
    d = settings.data_path
    probe = d / f".mailmoat-check-{os.getpid()}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"probe")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        return Check("data dir", "fail", f"{d.resolve()}: cannot write: {exc}")
    return Check("data dir", "ok", f"{d.resolve()} is writable")


def database(settings: Settings) -> Check:
    from sqlalchemy import create_engine

    from mailmoat.store import migrate
    from mailmoat.store.db import normalise_url, sqlite_file

    db = sqlite_file(settings.db_url)
    if db is not None and not db.exists():
        return Check("database", "ok", f"{db} does not exist yet: the gateway creates it on its first start")
    engine = create_engine(normalise_url(settings.db_url))  # the driver the store itself would use
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            current = migrate.current(conn)
    except Exception as exc:  # a driver's own errors: refused connection, bad password, unknown database
        return Check("database", "fail", f"{where}: {exc}".splitlines()[0])
    finally:
        engine.dispose()
    head = migrate.head()
    if current == head:
        return Check("database", "ok", f"{where} at the current schema ({head})")
    if current is None:
        return Check("database", "ok", f"{where} is empty: the gateway creates its tables on its first start")
    return Check("database", "warn", f"{where} at schema {current}: the gateway upgrades it to {head} when it starts")


async def _greeting(host: str, port: int, path: str, hello: bytes, timeout: float) -> str:
    """The server's greeting and its answer to EHLO/LHLO (a QUIT follows); `path`: a unix socket."""
    opening = asyncio.open_unix_connection(path) if path else asyncio.open_connection(host, port)
    reader, writer = await asyncio.wait_for(opening, timeout)
    try:
        banner = (await asyncio.wait_for(reader.readline(), timeout)).decode(errors="replace").strip()
        if not banner.startswith("220"):
            raise OSError(f"greeted with {banner!r}")
        writer.write(hello + b" " + socket.getfqdn().encode(errors="replace") + b"\r\n")
        await writer.drain()
        while True:
            line = (await asyncio.wait_for(reader.readline(), timeout)).decode(errors="replace")
            if not line.startswith("250"):
                raise OSError(f"{hello.decode()} answered {line.strip()!r}")
            if line[3:4] != "-":
                break
        writer.write(b"QUIT\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()
        return banner
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def delivery(settings: Settings) -> Check:
    from mailmoat.deliver.relay import RelayConfigError, RelayTarget

    if not settings.delivery.relay_to:
        mail = settings.mail_dir
        try:
            mail.mkdir(parents=True, exist_ok=True)
            writable = os.access(mail, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            return Check("delivery", "fail", f"embedded Maildir store {mail.resolve()} is not writable")
        return Check("delivery", "ok", f"into the embedded Maildir store {mail.resolve()} (no relay_to)")
    try:
        target = RelayTarget.parse(settings.delivery.relay_to)
    except RelayConfigError as exc:
        return Check("delivery", "fail", str(exc))
    hello = b"LHLO" if target.scheme == "lmtp" else b"EHLO"
    try:
        banner = await _greeting(target.host, target.port, target.path, hello, max(1.0, settings.delivery.connect_timeout))
    except (OSError, TimeoutError) as exc:
        return Check("delivery", "fail", f"{target} does not answer: {exc or type(exc).__name__}")
    return Check("delivery", "ok", f"{target} answers: {banner}")


def tls(settings: Settings, now: float | None = None) -> Check | None:
    cert, key = settings.server.tls_cert, settings.server.tls_key
    if not cert and not key:
        return None
    now = time.time() if now is None else now
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        return Check("STARTTLS", "fail", f"{cert}: cannot load with {key or 'its key'}: {exc}")
    try:
        # The standard library reads a certificate file only through this (CPython) helper.
        decoded: dict[str, Any] = getattr(ssl, "_ssl")._test_decode_cert(cert)  # noqa: B009
        ends = ssl.cert_time_to_seconds(str(decoded["notAfter"]))
    except (AttributeError, KeyError, ValueError, OSError, ssl.SSLError):
        return Check("STARTTLS", "ok", f"{cert} loads with its key (its end date could not be read)")
    when = datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%d")
    if ends <= now:
        return Check("STARTTLS", "fail", f"{cert} expired on {when}")
    if ends - now < TLS_SOON:
        return Check("STARTTLS", "warn", f"{cert} ends on {when}, in {(ends - now) / 86400:.0f} days")
    return Check("STARTTLS", "ok", f"{cert} loads with its key, valid until {when}")


async def clamav(settings: Settings) -> Check | None:
    from mailmoat.attach import clamd

    cfg = settings.attachments.clamav
    if not cfg.enabled:
        return None
    if await clamd.ping(cfg.address, min(cfg.timeout, 10.0)):
        return Check("ClamAV", "ok", f"clamd at {cfg.address} answers PONG")
    return Check("ClamAV", "fail", f"clamd at {cfg.address} does not answer PING (on_failure = {cfg.on_failure})")


async def dns(settings: Settings) -> Check:
    from mailmoat.dnsresolver import DnsTempError, build_resolver, resolve

    resolver = build_resolver(settings.dns)
    if resolver is None:
        return Check("DNS", "warn", "no dns.nameservers: SPF, DKIM, DMARC and ARC are not checked")
    name = next((d for d in settings.server.domains if "." in d), "example.org")
    try:
        found = await asyncio.to_thread(resolve, resolver, name, "MX")
    except DnsTempError as exc:
        return Check("DNS", "fail", f"{', '.join(settings.dns.nameservers)} did not answer: {exc}")
    return Check("DNS", "ok", f"{', '.join(settings.dns.nameservers)} answer ({name} MX: {len(found)} record(s))")


async def recall_backend(settings: Settings) -> Check:
    cfg = settings.recall
    if cfg.backend == "maildir":
        return Check("recall", "ok", "in the embedded Maildir store")
    if cfg.backend == "imap":
        host, port = cfg.imap.host, cfg.imap.port
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ssl.create_default_context() if cfg.imap.ssl else None), 10.0
            )
            banner = (await asyncio.wait_for(reader.readline(), 10.0)).decode(errors="replace").strip()
            writer.close()
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            return Check("recall", "fail", f"IMAP {host}:{port} does not answer: {exc or type(exc).__name__}")
        state = "ok" if banner.startswith("* OK") else "fail"
        return Check("recall", state, f"IMAP {host}:{port} greets: {banner}")
    if cfg.backend == "doveadm":
        from urllib.parse import urlsplit

        url = urlsplit(cfg.doveadm.url)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname or "127.0.0.1", url.port or 80), 10.0)
            writer.close()
        except (OSError, TimeoutError) as exc:
            return Check("recall", "fail", f"doveadm HTTP API {cfg.doveadm.url} does not answer: {exc or type(exc).__name__}")
        return Check("recall", "ok", f"doveadm HTTP API {cfg.doveadm.url} takes connections")
    return Check("recall", "fail", f"recall.backend {cfg.backend!r} is not maildir, imap or doveadm")


def classifier(settings: Settings) -> Check:
    from mailmoat.classify import model_status

    if not settings.classifier.enabled:
        return Check("classifier", "warn", "classifier.enabled = false")
    st = model_status(settings)
    if st.get("error"):
        return Check("classifier", "fail", f"{st['path']}: {st['error']}")
    if not st.get("trained"):
        return Check("classifier", "warn", f"no model at {st['path']}: train one with `mailmoat train --ham DIR --spam DIR`")
    learnt = st.get("messages") or {}
    counts = ", ".join(f"{n} {label}" for label, n in sorted(learnt.items())) if isinstance(learnt, dict) else ""
    return Check("classifier", "ok", f"model at {st['path']}" + (f" ({counts})" if counts else ""))


def digest(settings: Settings) -> Check | None:
    """The quarantine digests, when on: whose links would reach the console."""
    cfg = settings.digest
    if not cfg.enabled:
        return None
    hours = ", ".join(f"{h:02d}:00" for h in sorted(set(cfg.hours)))
    url = cfg.console_url.strip()
    if not url:
        return Check("digest", "warn", f"at {hours}, without release links (digest.console_url is empty)")
    if not url.startswith(("https://", "http://")):
        return Check("digest", "fail", f"digest.console_url {url!r} is not an http(s) address: its links would not open")
    ours = {d.strip().lower() for d in settings.server.domains}
    if strays := [d for d in cfg.domains if d not in ours]:
        return Check("digest", "warn", f"digest.domains {strays} are not in server.domains: their recipients get no digest")
    if cfg.days > settings.retention.raw_days:
        return Check("digest", "warn", f"digest.days ({cfg.days:g}) is longer than retention.raw_days ({settings.retention.raw_days}): "
                     "older held mail is listed but can no longer be released")
    if url.startswith("http://"):
        return Check("digest", "warn", f"at {hours}, links to {url}: not HTTPS, so a release link can be read on the way")
    asked = f", requests for {', '.join(cfg.request_categories)}" if cfg.request_categories else ""
    return Check("digest", "ok", f"at {hours}, links to {url}, categories {', '.join(cfg.categories)}{asked}")


async def arc_seal(settings: Settings) -> Check | None:
    """The ARC sealing key, when sealing is on: it loads, and DNS publishes its public half."""
    import re

    from mailmoat.config import ConfigError
    from mailmoat.deliver.arc_seal import load_key, public_key_b64
    from mailmoat.dnsresolver import DnsTempError, build_resolver, txt_records

    cfg = settings.arc_seal
    if not cfg.enabled:
        return None
    try:
        ours = public_key_b64(load_key(cfg.key_file))
    except ConfigError as exc:
        return Check("ARC seal", "fail", str(exc))
    name = f"{cfg.selector}._domainkey.{cfg.domain}"
    resolver = build_resolver(settings.dns)
    if resolver is None:
        return Check("ARC seal", "warn", f"key loads; {name} not looked up (no dns.nameservers): publish p={ours[:24]}...")
    try:
        records = await asyncio.to_thread(txt_records, resolver, name)
    except DnsTempError as exc:
        return Check("ARC seal", "fail", f"key loads; {name} could not be looked up: {exc}")
    published = [re.sub(r"\s+", "", m.group(1)) for r in records if (m := re.search(r"(?:^|;)\s*p\s*=([^;]*)", r))]
    if ours in published:
        return Check("ARC seal", "ok", f"as {cfg.domain} (selector {cfg.selector}); {name} publishes the key")
    if not published:
        return Check("ARC seal", "fail", f"{name} publishes no DKIM key: receivers cannot verify the seal (p={ours[:24]}...)")
    return Check("ARC seal", "fail", f"{name} publishes another key than {cfg.key_file}: receivers would find every seal broken")


def report_mailbox(settings: Settings) -> Check | None:
    """The report mailbox, when one is named: reports reach it, and can be linked, only through the
    internal listener (a colleague's mail to it from the mail system)."""
    boxes = settings.policy.report_addresses
    if not boxes:
        return None
    domains = {d.strip().lower() for d in settings.server.domains}
    if strays := [b for b in boxes if b.rpartition("@")[2].lower() not in domains]:
        return Check("reports", "warn", f"policy.report_addresses {strays} are not in server.domains: mail to them is not ours to deliver")
    if not settings.server.internal_listen:
        return Check("reports", "warn", f"{', '.join(boxes)}: no server.internal_listen, so colleagues' reports never pass the "
                     "gateway and are not linked to what they report")
    auto = settings.policy.report_condemn_after
    return Check("reports", "ok", f"{', '.join(boxes)} through {settings.server.internal_listen}; "
                 + (f"a message {auto} colleagues report is condemned" if auto else "the security team decides on each report"))


def configuration(settings: Settings) -> list[Check]:
    """Values that can work but are probably a mistake (`config.warnings`); values that cannot work
    never get here: loading the file refused them."""
    from mailmoat.config import warnings

    return [Check("configuration", "warn", w) for w in warnings(settings)]


async def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order an administrator sets things up."""
    checks: list[Check | None] = [*configuration(settings), data_dir(settings), database(settings)]
    checks += await asyncio.gather(delivery(settings), clamav(settings), dns(settings), recall_backend(settings), arc_seal(settings))
    checks += [tls(settings), classifier(settings), digest(settings), report_mailbox(settings)]
    return [c for c in checks if c is not None]
