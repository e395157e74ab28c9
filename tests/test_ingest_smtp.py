"""SMTP ingest on a real loopback server: relay rules, limits, STARTTLS, directions, end-to-end delivery."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from mailmoat.blobstore import read_blob
from mailmoat.config import Settings
from mailmoat.ingest.smtp import INBOUND, INTERNAL, Listening, classify, start_listener
from mailmoat.ingest.spool import KEPT_SUFFIX, Spool, SpoolRef
from mailmoat.model import Action, Direction
from tests.support.gateway import count_files, inprocess_gateway, maildir_copies, wait_for

MSG = b"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: hello\r\n\r\nHello Bob.\r\n"


class RecordingDispatcher:
    """Stands in for the workers: remembers what was handed over."""

    def __init__(self, verdict: Action | None = None) -> None:
        self.refs: list[SpoolRef] = []
        self.verdict = verdict

    def submit(self, ref: SpoolRef) -> None:
        self.refs.append(ref)

    async def submit_in_session(self, ref: SpoolRef, timeout: float) -> Action | None:
        self.refs.append(ref)
        return self.verdict


class Harness:
    """Listeners alone (spool + a recording dispatcher) on an event loop in a thread."""

    def __init__(self, settings: Settings, dispatcher: RecordingDispatcher) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool_dir)
        self.dispatcher = dispatcher
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listeners: dict[str, Listening] = {}

    def call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(10)

    def listen(self, name: str) -> int:
        lst = self.call(start_listener(self.settings, self.spool, self.dispatcher, name, "127.0.0.1:0"))
        self.listeners[name] = lst
        return int(lst.port)

    def close(self) -> None:
        async def _close() -> None:
            for lst in self.listeners.values():
                lst.server.close()
                await lst.server.wait_closed()

        self.call(_close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def harness(settings: Settings) -> Iterator[Harness]:
    settings.server.domains = ["localhost", "example.com"]
    h = Harness(settings, RecordingDispatcher())
    yield h
    h.close()


def test_ehlo_advertises_the_extensions(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        code, _ = c.ehlo("client.example.org")
        assert code == 250
        for ext in ("size", "8bitmime", "smtputf8", "pipelining"):
            assert c.has_extn(ext), ext
        assert int(c.esmtp_features["size"]) == harness.settings.server.max_message_size
        assert not c.has_extn("starttls")  # no certificate configured
        assert not c.has_extn("auth")


def test_accepts_protected_domain_and_spools_before_250(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.org")
        c.mail("alice@example.org")
        assert c.rcpt("Bob@LocalHost")[0] == 250
        code, reply = c.data(MSG)
    assert code == 250 and b"queued as" in reply
    (ref,) = harness.dispatcher.refs
    assert reply.decode().endswith(ref.id)
    env, raw = harness.spool.load(ref)  # on disk by the time the 250 was sent
    assert env.direction is Direction.INBOUND and env.listener == INBOUND
    assert env.rcpt_tos == ["Bob@LocalHost"] and env.peer_ip == "127.0.0.1" and env.helo == "client.example.org"
    assert raw.startswith(b"Received: from client.example.org ([127.0.0.1])")
    assert raw.endswith(MSG) and env.size == len(raw)


def test_open_relay_is_refused(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("spammer.example.net")
        c.mail("alice@example.org")
        code, reply = c.rcpt("victim@elsewhere.example")
        assert code == 550 and b"Relaying denied" in reply
        assert c.rcpt("no-domain")[0] == 550
        assert c.rcpt("someone@localhost.evil.example")[0] == 550
        with pytest.raises(smtplib.SMTPDataError) as exc:  # no valid recipient: nothing to accept
            c.data(MSG)
        assert exc.value.smtp_code == 503
    assert harness.dispatcher.refs == []


def test_recipient_limit(harness: Harness) -> None:
    harness.settings.server.max_recipients = 3
    port = harness.listen(INBOUND)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.org")
        c.mail("alice@example.org")
        codes = [c.rcpt(f"u{i}@localhost")[0] for i in range(5)]
        assert codes == [250, 250, 250, 452, 452]
        assert c.data(MSG)[0] == 250
    env, _ = harness.spool.load(harness.dispatcher.refs[0])
    assert env.rcpt_tos == ["u0@localhost", "u1@localhost", "u2@localhost"]


def test_size_limit(harness: Harness) -> None:
    harness.settings.server.max_message_size = 20_000
    port = harness.listen(INBOUND)
    big = MSG + (b"y" * 76 + b"\r\n") * 400
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.org")
        code, _ = c.mail("alice@example.org", options=["SIZE=50000"])
        assert code == 552  # refused up front from the SIZE parameter
        c.rset()
        c.mail("alice@example.org")
        c.rcpt("bob@localhost")
        code, _ = c.data(big)
        assert code == 552
        # The session goes on: a small message afterwards is fine.
        c.mail("alice@example.org")
        c.rcpt("bob@localhost")
        assert c.data(MSG)[0] == 250
    assert len(harness.dispatcher.refs) == 1


def test_line_length_limit(harness: Harness) -> None:
    harness.settings.server.max_line_length = 2000
    port = harness.listen(INBOUND)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.org")
        c.mail("alice@example.org")
        c.rcpt("bob@localhost")
        code, reply = c.data(MSG + b"z" * 3000 + b"\r\n")
        assert code == 500 and b"too long" in reply.lower()
        c.mail("alice@example.org")
        c.rcpt("bob@localhost")
        assert c.data(MSG + b"z" * 1500 + b"\r\n")[0] == 250  # long but within the limit


def test_connections_per_ip(harness: Harness) -> None:
    harness.settings.server.max_connections_per_ip = 2
    port = harness.listen(INBOUND)
    first = smtplib.SMTP("127.0.0.1", port, timeout=10)
    second = smtplib.SMTP("127.0.0.1", port, timeout=10)
    with pytest.raises(smtplib.SMTPConnectError) as exc:
        smtplib.SMTP("127.0.0.1", port, timeout=10)
    assert exc.value.smtp_code == 421
    first.quit()
    # A slot is free again once a connection closes.
    third = wait_for(lambda: _try_connect(port), timeout=10, what="a free connection slot")
    assert third.noop()[0] == 250
    third.quit()
    second.quit()


def _try_connect(port: int) -> smtplib.SMTP | None:
    try:
        return smtplib.SMTP("127.0.0.1", port, timeout=10)
    except smtplib.SMTPConnectError:
        return None


def test_internal_listener_gives_directions(harness: Harness) -> None:
    port = harness.listen(INTERNAL)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("mail.example.com")
        c.sendmail("carol@example.com", ["dave@example.com", "erin@localhost"], MSG)
        c.sendmail("carol@example.com", ["dave@example.com", "someone@partner.example"], MSG)
    internal, outbound = (harness.spool.load(r)[0] for r in harness.dispatcher.refs)
    assert internal.direction is Direction.INTERNAL and internal.listener == INTERNAL
    assert outbound.direction is Direction.OUTBOUND


def test_internal_listener_only_for_relay_networks(harness: Harness) -> None:
    harness.settings.server.relay_networks = ["192.0.2.0/24"]
    port = harness.listen(INTERNAL)
    with pytest.raises(smtplib.SMTPConnectError) as exc:
        smtplib.SMTP("127.0.0.1", port, timeout=10)
    assert exc.value.smtp_code == 554


def test_classify() -> None:
    doms = ["example.com"]
    assert classify("a@example.com", ["b@EXAMPLE.com"], doms) is Direction.INTERNAL
    assert classify("a@example.com", ["b@example.com", "c@other.example"], doms) is Direction.OUTBOUND
    assert classify("", ["postmaster@example.com"], doms) is Direction.INTERNAL


def test_plain_addresses_read_as_aiosmtpd_reads_them() -> None:
    """The fast path for `<local@domain>` gives exactly what aiosmtpd's full parser gives."""
    import random
    import string

    from aiosmtpd.smtp import SMTP

    from mailmoat.ingest.smtp import GatewaySMTP

    class Full(SMTP):
        def __init__(self) -> None:
            self.local_part_limit = 0

    class Fast(GatewaySMTP):
        def __init__(self) -> None:
            self.local_part_limit = 0

    full, fast = Full(), Fast()
    rnd = random.Random(7)
    chars = string.ascii_letters + string.digits + ".-_+@<>() \"\t[]:=!#$%&'*/?^`{|}~\\ü,;"
    cases = ["<a@b>", "<a.b@c.d> SIZE=1 ", "<a@b> (c) SIZE=1", "<a..b@c>", "<.a@c>", "<a.@b>", "<a@b.>", "<a@b>X", "<a@b>\r", "<>"]
    for _ in range(20_000):
        cases.append("<" + "".join(rnd.choice(chars) for _ in range(rnd.randint(1, 16))) + rnd.choice([">", "> A=1", ""]))

    def outcome(smtp: SMTP, case: str) -> object:
        try:
            return smtp._getaddr(case)
        except Exception as exc:  # the full parser fails on some garbage; the fast path must too
            return type(exc)

    for case in cases:
        assert outcome(fast, case) == outcome(full, case), case
    fast.local_part_limit = full.local_part_limit = 3
    assert fast._getaddr("<abcd@b>") == full._getaddr("<abcd@b>") == (None, None)


def test_in_session_reject_and_tempfail(harness: Harness) -> None:
    harness.settings.policy.reject_in_session = True
    port = harness.listen(INBOUND)
    for verdict, want in ((Action.REJECT, 550), (Action.TEMPFAIL, 451), (Action.DELIVER, 250), (None, 250)):
        harness.dispatcher.verdict = verdict
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("client.example.org")
            c.mail("alice@example.org")
            c.rcpt("bob@localhost")
            assert c.data(MSG)[0] == want, verdict


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=mailmoat.localhost", "-days", "2", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_starttls(harness: Harness, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    harness.settings.server.tls_cert, harness.settings.server.tls_key = str(cert), str(key)
    port = harness.listen(INBOUND)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example.org")
        assert c.has_extn("starttls")
        assert c.starttls(context=ctx)[0] == 220
        c.ehlo("client.example.org")
        assert not c.has_extn("starttls")
        c.sendmail("alice@example.org", ["bob@localhost"], MSG)
    _, raw = harness.spool.load(harness.dispatcher.refs[0])
    assert b"with ESMTPS id" in raw.split(b"\r\n\r\n")[0]


def test_pipelined_commands(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO client.example.org\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\nRCPT TO:<x@nowhere.example>\r\nDATA\r\n")
        replies = [f.readline()[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"550", b"354"]
        s.sendall(MSG + b".\r\nQUIT\r\n")
        assert f.readline().startswith(b"250 2.0.0 Ok: queued as")
        assert f.readline().startswith(b"221")


def test_a_client_that_closes_its_side_after_the_final_dot_is_still_answered(harness: Harness) -> None:
    """`printf ... | nc -N` closes its side once it has sent the message. The message is accepted
    then, so the client must hear so: without the reply it would send the message again."""
    port = harness.listen(INBOUND)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        s.sendall(b"EHLO client.example.org\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        s.sendall(MSG + b".\r\n")
        s.shutdown(socket.SHUT_WR)
        replies = f.read()
    assert b"250 2.0.0 Ok: queued as" in replies, replies
    assert len(harness.dispatcher.refs) == 1


def test_a_client_that_closes_mid_message_leaves_nothing(harness: Harness) -> None:
    port = harness.listen(INBOUND)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        s.sendall(b"EHLO client.example.org\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        s.sendall(MSG)
        s.shutdown(socket.SHUT_WR)
        replies = f.read()
    assert b"queued" not in replies and harness.dispatcher.refs == []


# -- end to end: the whole gateway ------------------------------------------------------------


def test_end_to_end_smtplib_into_maildir(settings: Settings) -> None:
    settings.server.domains = ["localhost", "example.com"]
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.ehlo("client.example.org")
            c.mail("alice@example.org")
            c.rcpt("bob@localhost")
            c.rcpt("carol@example.com")
            code, reply = c.data(MSG)
        assert code == 250
        qid = reply.decode().rsplit(" ", 1)[1]
        bob = wait_for(lambda: maildir_copies(settings.mail_dir, "bob@localhost"), what="bob's copy")
        carol = wait_for(lambda: maildir_copies(settings.mail_dir, "carol@example.com"), what="carol's copy")
        assert list(bob) == [f"{qid}-0000"] and list(carol) == [f"{qid}-0001"]
        (path,) = bob[f"{qid}-0000"]
        data = path.read_bytes()
        assert f"{qid}-0000" in path.name
        head = data.split(b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n")[0]
        for h in (b"X-Mailmoat-Id:", b"X-Mailmoat-Verdict:", b"Authentication-Results:", b"Received: from client.example.org"):
            assert h in head, h
        assert data.rstrip().endswith(b"Hello Bob.")
        wait_for(lambda: gw.gateway.spool is not None and gw.gateway.spool.count() == 0, what="an empty spool")
    from mailmoat.store.db import Store

    store = Store(settings.db_url, create=False)
    try:
        row = store.get_message(qid)
        assert row is not None and row.subject == "hello" and row.direction == "inbound"
        got = {(d.recipient, d.tracking_id, d.status) for d in store.deliveries(qid)}
        assert got == {("bob@localhost", f"{qid}-0000", "delivered"), ("carol@example.com", f"{qid}-0001", "delivered")}
    finally:
        store.close()


def test_end_to_end_swaks(settings: Settings, tmp_path: Path) -> None:
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        res = subprocess.run(
            [
                "swaks", "--server", f"{gw.host}:{gw.port}", "--from", "sender@example.org", "--to", "user@localhost",
                "--helo", "swaks.example.org", "--header", "Subject: via swaks", "--body", "sent by swaks",
                "--timeout", "30",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert "250 2.0.0 Ok: queued as" in res.stdout
        # swaks refused as an open relay, with the reply on its transcript.
        relay = subprocess.run(
            ["swaks", "--server", f"{gw.host}:{gw.port}", "--from", "a@example.org", "--to", "b@elsewhere.example",
             "--timeout", "30"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert relay.returncode != 0 and "550 5.7.1 Relaying denied" in relay.stdout
        wait_for(lambda: count_files(settings.mail_dir, "user@localhost") == 1, what="the swaks message")
        (copies,) = maildir_copies(settings.mail_dir, "user@localhost").values()
        assert b"sent by swaks" in copies[0].read_bytes()


def _rows_from(settings: Settings, sender: str) -> list[tuple[str, str, list[str]]]:
    from sqlalchemy import select

    from mailmoat.store.db import Store
    from mailmoat.store.models import MessageRow

    store = Store(settings.db_url, create=False)
    try:
        with store.session() as s:
            return [(r.id, r.action, list(r.reasons)) for r in s.scalars(select(MessageRow).where(MessageRow.mail_from == sender))]
    finally:
        store.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_reject_in_session_end_to_end(settings: Settings, workers: int) -> None:
    settings.server.workers = workers
    settings.policy.reject_in_session = True
    settings.policy.deny_senders = ["evil@example.net"]
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=60) as c:
            c.ehlo("client.example.org")
            c.mail("evil@example.net")
            c.rcpt("bob@localhost")
            code, reply = c.data(MSG)
            assert (code, reply[:9]) == (550, b"5.7.1 Mes")
            c.mail("alice@example.org")
            c.rcpt("bob@localhost")
            assert c.data(MSG)[0] == 250
        wait_for(lambda: gw.gateway.spool is not None and gw.gateway.spool.count() == 0, what="an empty spool")
        copies = wait_for(lambda: maildir_copies(settings.mail_dir, "bob@localhost"), what="the clean message")
    assert len(copies) == 1  # only the clean one
    ((_, action, reasons),) = _rows_from(settings, "evil@example.net")
    assert action == "reject" and any("denylisted" in r for r in reasons)


def test_reject_after_250_is_quarantined_end_to_end(settings: Settings) -> None:
    settings.server.workers = 0
    settings.policy.deny_senders = ["evil@example.net"]
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=60) as c:
            c.ehlo("client.example.org")
            c.mail("evil@example.net")
            c.rcpt("bob@localhost")
            code, reply = c.data(MSG)
        assert code == 250  # accepted: the verdict comes after the 250
        qid = reply.decode().rsplit(" ", 1)[1]
        wait_for(lambda: _rows_from(settings, "evil@example.net"), what="the record")
        wait_for(lambda: gw.gateway.spool is not None and gw.gateway.spool.count() == 0, what="an empty spool")
    ((rid, action, reasons),) = _rows_from(settings, "evil@example.net")
    assert rid == qid and action == "quarantine"
    assert any("no backscatter" in r for r in reasons)
    assert maildir_copies(settings.mail_dir, "bob@localhost") == {}
    (kept,) = settings.raw_dir.rglob(f"{qid}.*")  # kept for release: the spool entry, linked
    assert kept.suffix == KEPT_SUFFIX
    retained = read_blob(str(kept))
    assert retained is not None and retained.startswith(b"Received: ") and retained.endswith(MSG)


def test_idn_domains_match_in_either_form(settings: Settings) -> None:
    settings.server.domains = ["例子.cn"]
    h = Harness(settings, RecordingDispatcher())
    try:
        port = h.listen(INBOUND)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("client.example.org")
            c.mail("alice@example.org")
            assert c.rcpt("bob@xn--fsqu00a.cn")[0] == 250
            assert c.rcpt("bob@xn--fsqu00a.cn.evil.example")[0] == 550
    finally:
        h.close()


def test_serve_command_prints_where_it_listens_and_stops_cleanly(tmp_path: Path) -> None:
    import signal

    from tests.support.gateway import SubprocessGateway

    gw = SubprocessGateway(
        tmp_path / "var", ["--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0", "--workers", "0"]
    ).start()
    try:
        wait_for(lambda: any("console and API on" in line for line in gw.output), timeout=30, what="the console line")
        lines = "".join(gw.output)
        assert "inbound SMTP listening on 127.0.0.1:" in lines
        assert "internal relay SMTP listening on 127.0.0.1:" in lines
        web = next(line for line in gw.output if "console and API on" in line).split("on ", 1)[1].strip()
        import urllib.request

        with urllib.request.urlopen(web + "healthz", timeout=30) as resp:
            assert resp.status == 200
        port = int(next(line for line in gw.output if "inbound SMTP" in line).rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            assert c.sendmail("alice@example.org", ["bob@localhost"], MSG) == {}
        wait_for(lambda: maildir_copies(tmp_path / "var" / "mailboxes", "bob@localhost"), what="delivery")
        gw.kill(signal.SIGINT)
        assert gw.proc is not None and gw.proc.returncode == 0, gw.tail()
        assert "stopped" in "".join(gw.output)
    finally:
        gw.stop()


def test_serve_refuses_a_bad_setting(tmp_path: Path) -> None:
    from tests.support.gateway import MAILMOAT

    res = subprocess.run(
        [MAILMOAT, "serve", "--data-dir", str(tmp_path), "--relay-to", "ftp://example.org"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2 and "relay_to" in res.stderr


@pytest.mark.parametrize("workers", ["0", "1"])
def test_serve_stops_with_a_message_when_the_policy_cannot_load(tmp_path: Path, workers: str) -> None:
    from tests.support.gateway import MAILMOAT, write_toml

    cfg = write_toml(tmp_path / "m.toml", {"policy": {"scores": {"NO_SUCH_SYMBOL_ANYWHERE": 5.0}}})
    res = subprocess.run(
        [MAILMOAT, "serve", "-c", str(cfg), "--data-dir", str(tmp_path / "var"), "--listen", "127.0.0.1:0",
         "--workers", workers, "--web", "off"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "NO_SUCH_SYMBOL_ANYWHERE" in res.stderr.splitlines()[-1]
