"""Delivery into a real Dovecot over LMTP, read back over IMAP by tracking header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.deliver.relay import LmtpClient, RelayTarget
from mailmoat.model import Action, Address, Envelope, Finding, Message, Verdict
from mailmoat.store.db import Store
from tests.support.dovecot import DovecotServer, dovecot  # noqa: F401  (fixture)

pytestmark = pytest.mark.dovecot

RAW = (
    b"X-Mailmoat-Id: FORGED-0000\r\n"
    b"From: Alice <alice@example.org>\r\n"
    b"To: team@example.test\r\n"
    b"Subject: lmtp test\r\n"
    b"Message-ID: <l1@example.org>\r\n"
    b"\r\n"
    b"Hello over LMTP\r\n"
    b".leading dot\r\n"
)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.db_url)
    yield s
    s.close()


def imap(dc: DovecotServer, user: str) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=dc.imap_port, ssl=False, timeout=30)
    c.login(user, dc.users[user])
    return c


async def test_lmtp_reads_one_reply_per_recipient(dovecot: DovecotServer) -> None:  # noqa: F811
    client = LmtpClient(timeout=30)
    await client.connect(RelayTarget.parse(dovecot.lmtp_url), "gw.test", 10)
    try:
        res = await client.transaction(
            "alice@example.org",
            ["user0001@example.test", "nobody@example.test", "user0002@example.test"],
            b"Subject: multi\r\n\r\nmulti-recipient\r\n",
        )
        # a second transaction on the same connection proves every DATA reply was consumed
        res2 = await client.transaction("alice@example.org", ["user0003@example.test"], b"Subject: two\r\n\r\nx\r\n")
    finally:
        await client.quit()
    assert res["user0001@example.test"][0] == 250 and res["user0002@example.test"][0] == 250
    assert res["nobody@example.test"][0] == 550
    assert res2["user0003@example.test"][0] == 250


async def test_deliver_via_lmtp_and_find_by_tracking_id(
    settings: Settings,
    store: Store,
    dovecot: DovecotServer,  # noqa: F811
) -> None:
    settings.delivery.relay_to = dovecot.lmtp_url
    svc = DeliveryService(settings, store)
    env = Envelope("alice@example.org", ["user0001@example.test", "User0002@example.test", "nobody@example.test"])
    verdict = Verdict(
        Action.DELIVER, 0.0,
        [Finding("SPF_PASS", 0.0, data={"authres": {"method": "spf", "result": "pass", "props": {"smtp.mailfrom": "example.org"}}})],
    )
    message = Message(raw=RAW, subject="lmtp test", from_=Address("Alice", "alice@example.org"), message_id="<l1@example.org>")
    out = await svc.deliver(env, RAW, verdict, message)
    assert [o.status for o in out] == ["delivered", "delivered", "failed"]
    assert out[2].reply.startswith("550")
    assert {d.status for d in store.deliveries(env.id)} == {"delivered", "failed"}

    for i, user in enumerate(["user0001@example.test", "user0002@example.test"]):
        c = imap(dovecot, user)
        try:
            c.select_folder("INBOX", readonly=True)
            assert c.search(["HEADER", "X-Mailmoat-Id", "FORGED"]) == []
            exact = c.search(["HEADER", "X-Mailmoat-Id", env.tracking_id(i)])
            assert len(exact) == 1
            assert c.search(["HEADER", "X-Mailmoat-Id", env.id]) == exact  # the message id finds every copy
            data = c.fetch(exact, ["BODY.PEEK[]"])[exact[0]][b"BODY[]"]
        finally:
            c.logout()
        assert f"\r\nX-Mailmoat-Id: {env.tracking_id(i)}\r\n".encode() in data  # below Dovecot's own trace headers
        assert data.count(b"X-Mailmoat-Id:") == 1
        assert b"Authentication-Results: mailmoat.localhost;\r\n\tspf=pass smtp.mailfrom=example.org\r\n" in data
        assert b"X-Mailmoat-Verdict: action=deliver; score=0.00; symbols=SPF_PASS\r\n" in data
        assert data.endswith(b"Hello over LMTP\r\n.leading dot\r\n")

    # delivering again after a "crash" re-run sends nothing new
    again = await svc.deliver(env, RAW, verdict, message)
    assert [o.status for o in again] == ["delivered", "delivered", "failed"]
    c = imap(dovecot, "user0001@example.test")
    try:
        c.select_folder("INBOX", readonly=True)
        assert len(c.search(["HEADER", "X-Mailmoat-Id", env.id])) == 1
    finally:
        c.logout()


def test_harness_hides_recall_namespace_and_offers_admin_access(dovecot: DovecotServer) -> None:  # noqa: F811
    import json
    import urllib.request

    user = "user0003@example.test"
    c = imap(dovecot, user)
    try:
        assert all(b"MailmoatRecall" not in f[2].encode() for f in c.list_folders())
        with pytest.raises(IMAPClient.Error):
            c.select_folder("MailmoatRecall/Quarantine")
    finally:
        c.logout()
    m = IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=30)
    try:
        m.login(dovecot.master_login(user), dovecot.master_password)
        m.select_folder("MailmoatRecall/Quarantine", readonly=True)
    finally:
        m.logout()
    assert dovecot.doveadm("mailbox", "list", "-u", user).returncode == 0
    req = urllib.request.Request(
        dovecot.api_url,
        data=json.dumps([["mailboxList", {"user": user}, "t1"]]).encode(),
        headers={**dovecot.api_auth_header(), "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    assert answer[0][0] == "doveadmResponse" and {"mailbox": "INBOX"} in answer[0][1]
