"""The Store facade: idempotent records with indicators, claims, trace queries, raw retention (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailmoat.config import Settings
from mailmoat.ingest.spool import KEPT_SUFFIX, Spool
from mailmoat.model import Action, Address, Direction, Envelope, Finding, Message, Part, QrCode, Url, Verdict
from mailmoat.store.db import Store, normalise_url
from mailmoat.store.models import IndicatorRow, MessageRow
from mailmoat.store.retention import purge_raw


def sample(
    subject: str = "Invoice 42", sender: str = "Billing@Example.org", received_at: float | None = None
) -> tuple[Envelope, Message, Verdict]:
    env = Envelope(
        sender, ["bob@localhost", "carol@localhost"], peer_ip="192.0.2.7", helo="mx.example.org",
        direction=Direction.INBOUND, size=1234, received_at=received_at or time.time(),
    )
    msg = Message(
        raw=b"x" * 10,
        headers=[("From", "Billing <billing@example.org>"), ("Subject", subject)],
        subject=subject,
        from_=Address("Billing", "billing@example.org"),
        message_id="<inv42@example.org>",
        urls=[
            Url("https://login.evil.co.uk/x?a=1", host="login.evil.co.uk", source="href"),
            Url("https://pay.example.com/", host="pay.example.com", registrable_domain="example.com", source="qr"),
        ],
        parts=[
            Part("1", "text/plain", sha256="aa" * 32),
            Part("2", "application/pdf", filename="inv.pdf", sha256="BB" * 32, is_attachment=True),
        ],
        qr_codes=[QrCode("https://pay.example.com/")],
    )
    verdict = Verdict(
        Action.TAG, 6.5,
        [Finding("URL_LOOKALIKE", 4.0, "login.evil.co.uk looks like example.org", "urls"), Finding("QR_URL", 2.5)],
        ["score 6.5 >= tag 5.0"],
    )
    return env, msg, verdict


def indicators(store: Store, message_id: str) -> set[tuple[str, str]]:
    with store.session() as s:
        return {(r.kind, r.value) for r in s.query(IndicatorRow).filter_by(message_id=message_id)}


def test_url_normalisation() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_is_wal(store: Store) -> None:
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert int(c.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000


def test_record_message_is_an_idempotent_upsert(store: Store) -> None:
    env, msg, verdict = sample()
    path = store.retain_raw(env, b"raw bytes\r\n")
    assert Path(path).read_bytes() == b"raw bytes\r\n"
    store.record_message(env, msg, verdict, path)
    store.record_message(env, msg, verdict, "")  # again (e.g. after a crash): same row, raw path kept
    with store.session() as s:
        rows = s.query(MessageRow).all()
        assert len(rows) == 1
        row = rows[0]
        assert (row.mail_from, row.from_addr, row.subject, row.message_id) == (
            "Billing@Example.org", "billing@example.org", "Invoice 42", "<inv42@example.org>",
        )
        assert row.action == "tag" and row.score == 6.5 and row.symbols == {"URL_LOOKALIKE": 4.0, "QR_URL": 2.5}
        assert row.findings[0]["evidence"] == "login.evil.co.uk looks like example.org"
        assert row.reasons == ["score 6.5 >= tag 5.0"] and row.headers[1] == ["Subject", "Invoice 42"]
        assert row.raw_path == path and row.size == 1234 and row.direction == "inbound"
        assert row.rcpt_tos == ["bob@localhost", "carol@localhost"] and row.peer_ip == "192.0.2.7"
    got = indicators(store, env.id)
    expected = {
        ("mail_from", "billing@example.org"),
        ("from_addr", "billing@example.org"),
        ("sender_domain", "example.org"),
        ("url", "https://login.evil.co.uk/x?a=1"),
        ("url", "https://pay.example.com/"),
        ("url_domain", "evil.co.uk"),
        ("url_domain", "example.com"),
        ("url_host", "login.evil.co.uk"),
        ("url_host", "pay.example.com"),
        ("sha256", "bb" * 32),
        ("qr", "https://pay.example.com/"),
        ("symbol", "URL_LOOKALIKE"),
        ("symbol", "QR_URL"),
        ("message_id", "inv42@example.org"),
    }
    assert got == expected
    # a re-scan with a new verdict replaces the facts, never duplicates them
    store.record_message(env, msg, Verdict(Action.DELIVER, 0.0), "")
    assert ("symbol", "QR_URL") not in indicators(store, env.id)
    assert len(indicators(store, env.id)) == len(expected) - 2


def test_a_rescan_keeps_an_administrators_verdict(store: Store) -> None:
    env, msg, _ = sample()
    for judged in ("released", "condemned", "deleted"):
        store.record_message(env, msg, Verdict(Action.QUARANTINE, 12.0), "")
        with store.session() as s:
            s.get_one(MessageRow, env.id).status = judged
            s.commit()
        store.record_message(env, msg, Verdict(Action.DELIVER, 0.0), "")  # judged again by the engine
        with store.session() as s:
            assert s.get_one(MessageRow, env.id).status == judged
        with store.session() as s:
            s.get_one(MessageRow, env.id).status = "processed"
            s.commit()
    store.record_message(env, msg, Verdict(Action.QUARANTINE, 12.0), "")
    with store.session() as s:
        assert s.get_one(MessageRow, env.id).status == "quarantined"


def test_claims_are_exclusive_and_expire(store: Store) -> None:
    env, msg, verdict = sample()
    store.record_message(env, msg, verdict, "")
    copy = [(0, "bob@localhost", "bob@localhost", env.tracking_id(0))]
    now = time.time()
    first = store.claim(env.id, copy, lease_until=now + 300)
    assert first[0].claimed and first[0].fresh
    second = store.claim(env.id, copy, lease_until=now + 300, stale_before=now)
    assert not second[0].claimed and second[0].status == "sending"
    third = store.claim(env.id, copy, lease_until=now + 900, stale_before=now + 600)  # the first worker died
    assert third[0].claimed and not third[0].fresh
    store.finish([{"tracking_id": env.tracking_id(0), "status": "deferred", "next_attempt": now + 60, "attempts": 1}])
    assert [d.tracking_id for d in store.due_deliveries(now + 61, stale_before=now)] == [env.tracking_id(0)]
    assert store.due_deliveries(now + 30, stale_before=now) == []


def test_trace_filters(store: Store) -> None:
    now = time.time()
    e1, m1, v1 = sample("Invoice 42", "billing@example.org", now - 3 * 86400)
    e2, m2, v2 = sample("Lunch?", "friend@example.net", now - 3600)
    m2.message_id = "<lunch@example.net>"
    m2.from_ = Address("Friend", "friend@example.net")
    v2 = Verdict(Action.DELIVER, 0.0)
    for e, m, v in ((e1, m1, v1), (e2, m2, v2)):
        store.record_message(e, m, v, "")
    store.claim(e2.id, [(0, "bob@localhost", "bob@localhost", e2.tracking_id(0))], lease_until=0)
    store.finish([{"tracking_id": e2.tracking_id(0), "status": "delivered", "reply": "250 ok", "delivered_at": now}])

    def ids(**kw: object) -> list[str]:
        return [r["id"] for r in store.trace(**kw)]

    assert ids() == [e2.id, e1.id]  # newest first
    assert ids(sender="BILLING@") == [e1.id]
    assert ids(subject="lunch") == [e2.id]
    assert ids(rcpt="carol@") == [e2.id, e1.id]
    assert ids(message_id="lunch@example.net") == [e2.id]
    assert ids(message_id="<inv42@example.org>") == [e1.id]
    assert ids(message_id=e2.tracking_id(0)) == [e2.id]
    assert ids(since=now - 86400) == [e2.id]
    assert ids(until=now - 86400) == [e1.id]
    assert ids(action="tag") == [e1.id]
    assert ids(sender="%") == []  # wildcards are literal
    (r,) = store.trace(subject="lunch")
    assert r["deliveries"] == [
        {
            "recipient": "bob@localhost", "mailbox": "bob@localhost", "tracking_id": e2.tracking_id(0),
            "status": "delivered", "attempts": 0, "reply": "250 ok", "location": "",
            "delivered_at": r["deliveries"][0]["delivered_at"], "next_attempt": "", "recall": None,  # never recalled
        }
    ]


def test_retention_purges_old_raw_but_keeps_queued(settings: Settings, store: Store) -> None:
    old = time.time() - 40 * 86400
    e_old, m, v = sample(received_at=old)
    e_queued, _, _ = sample(received_at=old)
    e_new, _, _ = sample()
    paths = {}
    for e in (e_old, e_queued, e_new):
        paths[e.id] = store.retain_raw(e, b"raw")
        store.record_message(e, m, v, paths[e.id])
    for e in (e_old, e_queued):
        os.utime(paths[e.id], (old, old))
    store.claim(e_queued.id, [(0, "bob@localhost", "bob@localhost", e_queued.tracking_id(0))], lease_until=0)
    store.finish([{"tracking_id": e_queued.tracking_id(0), "status": "deferred", "next_attempt": time.time()}])
    report = purge_raw(store, settings.raw_dir, settings.retention.raw_days)
    assert report.files == 1 and report.kept_queued == 1
    assert not Path(paths[e_old.id]).exists() and store.get_message(e_old.id).raw_path == ""  # type: ignore[union-attr]
    assert Path(paths[e_queued.id]).exists() and Path(paths[e_new.id]).exists()


def test_retention_purges_kept_spool_entries_too(settings: Settings, store: Store) -> None:
    old = time.time() - 40 * 86400
    env, m, v = sample(received_at=old)
    spool = Spool(settings.spool_dir)
    ref = spool.claim(spool.write(env, b"raw\r\n").name, "w0")
    assert ref is not None
    kept, _ = spool.keep(ref, store.raw_folder(env, settings.raw_dir), f"{env.id}{KEPT_SUFFIX}")
    spool.done(ref)
    store.record_message(env, m, v, str(kept))
    os.utime(kept, (old, old))
    waiting = spool.claim(spool.write(env, b"still in the spool\r\n").name, "w0")
    assert waiting is not None
    linked, _ = spool.keep(waiting, store.raw_folder(env, settings.raw_dir), "01STILLINSPOOL.spool")
    os.utime(linked, (old, old))
    report = purge_raw(store, settings.raw_dir, settings.retention.raw_days)
    assert report.files == 1 and report.kept_queued == 1 and linked.exists()  # its entry is not done yet
    assert not kept.exists() and store.get_message(env.id).raw_path == ""  # type: ignore[union-attr]


# -- PostgreSQL ---------------------------------------------------------------------------

PG_ADMIN = os.environ.get("MAILMOAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"mm_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(PG_ADMIN.replace("postgresql://", "postgresql://", 1), autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server: the embedded default is still tested above
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        conn.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def hostile(store: Store) -> None:
    """Bad input reaches the record too: NUL, lone surrogates, odd finding data; never a crash."""
    env, msg, _ = sample("bad\x00subject \udcff")
    msg.headers = [("Subject", "bad\x00subject \udcff")]
    verdict = Verdict(Action.DELIVER, 0.0, [Finding("ODD", 0.0, "ev\x00", data={"b": b"\xff\x00", "s": {2, 1}, "n": float("nan")})])
    store.record_message(env, msg, verdict, "")
    (r,) = store.trace(message_id=env.tracking_id(0).rsplit("-", 1)[0])
    assert r["subject"] == "badsubject ?"
    row = store.get_message(env.id)
    assert row is not None and row.findings[0]["data"] == {"b": "\ufffd", "s": [1, 2], "n": None}


def test_hostile_text_sqlite(store: Store) -> None:
    hostile(store)


@pytest.mark.postgres
def test_postgresql_record_claim_trace(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        hostile(store)
        env, msg, verdict = sample()
        store.record_message(env, msg, verdict, "")
        store.record_message(env, msg, verdict, "")
        copy = [(0, "bob@localhost", "bob@localhost", env.tracking_id(0))]
        assert store.claim(env.id, copy, lease_until=time.time() + 60)[0].claimed
        assert not store.claim(env.id, copy, lease_until=time.time() + 60)[0].claimed
        (r,) = store.trace(rcpt="carol@", message_id=env.id)
        assert r["id"] == env.id and r["deliveries"][0]["status"] == "sending"
        assert ("url_domain", "evil.co.uk") in indicators(store, env.id)
    finally:
        store.close()


def test_unpacked_member_hashes_become_indicators(store: Store) -> None:
    env, msg, verdict = sample()
    verdict.findings.append(
        Finding(
            "ATTACHMENT_HASHES", 0.0, "2 files hashed", "filetypes",
            data={"files": [{"name": "a.zip > evil.exe", "sha256": "CC" * 32, "ssdeep": "3:abc:def"}, "junk"]},
        )
    )
    store.record_message(env, msg, verdict, "")
    got = indicators(store, env.id)
    assert ("sha256", "cc" * 32) in got and ("ssdeep", "3:abc:def") in got
    assert ("sha256", "bb" * 32) in got  # the attachment itself, from the parts


def test_a_recall_selection_by_host_finds_the_mail_that_linked_it(store: Store) -> None:
    """Administrators paste the host from the evidence: a subdomain, or a page on a hosting platform
    whose registrable domain is the platform's own."""
    from sqlalchemy import select

    from mailmoat.recall.selection import Selector, message_conditions
    from mailmoat.store.models import MessageRow

    env, msg, verdict = sample()
    msg.urls.append(Url("https://evil-login.web.app/sso", host="evil-login.web.app", source="qr"))
    store.record_message(env, msg, verdict, "")
    other, omsg, _ = sample(subject="Team site")
    omsg.urls = [Url("https://our-team.web.app/", host="our-team.web.app", source="href")]
    store.record_message(other, omsg, Verdict(Action.DELIVER, 0.0), "")

    def found(where: str) -> set[str]:
        with store.session() as s:
            return set(s.scalars(select(MessageRow.id).where(*message_conditions(Selector(url_domain=where)))))

    assert found("evil-login.web.app") == {env.id}
    assert found("login.evil.co.uk") == {env.id} and found("evil.co.uk") == {env.id}
    assert found("web.app") == {env.id, other.id}  # the platform itself: everything hosted there
    assert found("elsewhere.example") == set()
    # A form on a host everyone shares is recorded as its page, whose id keeps its case.
    form, fmsg, _ = sample(subject="Survey")
    fmsg.urls = [Url("https://docs.google.com/forms/d/e/1FAIpQLSx/viewform?usp=sf_link", host="docs.google.com", source="href")]
    store.record_message(form, fmsg, Verdict(Action.DELIVER, 0.0), "")
    assert ("url_page", "docs.google.com/forms/d/e/1FAIpQLSx") in indicators(store, form.id)
    assert found("docs.google.com/forms/d/e/1FAIpQLSx") == {form.id}
    assert found("docs.google.com/forms/d/e/1faipqlsx") == set()
    assert found("docs.google.com") == {form.id}


def test_a_redirect_target_is_recorded_as_a_link_of_its_own(store: Store) -> None:
    """A click tracker's target (percent-encoded or in base64) is where the reader goes: a recall,
    a threat indicator or a wave by its domain finds the mail that wrapped it."""
    from sqlalchemy import select

    from mailmoat.recall.selection import Selector, message_conditions
    from mailmoat.store.models import MessageRow

    env, msg, verdict = sample()
    tracker = "https://acct.lt.mailer-tracker.com/Prod/link-tracker?redirectUrl=aHR0cHMlM0ElMkYlMkZwb3J0YWwtbXlsZWRnZXIuY29tJTJG&sig=9f"
    msg.urls = [Url(tracker, host="acct.lt.mailer-tracker.com", source="href"),
                Url("https://www.google.com/url?q=https%3A%2F%2Fsso.evil-login.com%2Fx", host="www.google.com", source="href")]
    # A QR code found in an archive, whose link goes through an open redirect.
    verdict.findings.append(Finding("QR_IN_ARCHIVE", 4.0, "a code in a.zip", "archive_qr", data={"codes": [
        {"payload": "https://www.google.com/url?q=https%3A%2F%2Fqr-lure.com%2Fpay", "urls": ["https://www.google.com/url?q=https%3A%2F%2Fqr-lure.com%2Fpay"]},
    ]}))
    store.record_message(env, msg, verdict, "")
    got = indicators(store, env.id)
    assert ("url_domain", "qr-lure.com") in got
    assert {("url", "https://portal-myledger.com/"), ("url_domain", "portal-myledger.com"),
            ("url_domain", "evil-login.com"), ("url_host", "sso.evil-login.com"),
            ("url_domain", "mailer-tracker.com"), ("url_domain", "google.com")} <= got
    with store.session() as s:
        ids = set(s.scalars(select(MessageRow.id).where(*message_conditions(Selector(url_domain="portal-myledger.com")))))
    assert ids == {env.id}


@pytest.mark.postgres
def test_postgresql_knows_a_message_it_recorded_before(pg_url: str) -> None:
    """PostgreSQL's driver counts -1 rows for INSERT ... ON CONFLICT DO NOTHING: read as "new", a
    message recorded before (a spool entry recovered after a crash) was recorded again, and its
    copies broke the unique constraint on every retry; an administrator's verdict was lost too."""
    from sqlalchemy import select

    from mailmoat.store import db

    store = Store(pg_url)
    try:
        test_a_rescan_keeps_an_administrators_verdict(store)
        with store.engine.begin() as conn:
            row = conn.execute(select(db._MESSAGES).limit(1)).mappings().one()
            assert db._insert_new(conn, db._MESSAGES, dict(row)) is False
        env, _msg, verdict = sample()
        copies = [(0, "bob@localhost", "bob@localhost", env.tracking_id(0))]
        assert store.claim(env.id, copies, lease_until=time.time() + 60, ensure=(env, verdict))[0].claimed
        # The node dies; the entry recovered from its spool claims its copies again, recording the
        # message "if new": no error, and the copy already claimed is not claimed twice.
        assert not store.claim(env.id, copies, lease_until=time.time() + 60, ensure=(env, verdict))[0].claimed
    finally:
        store.close()
