"""Allow and deny lists kept in the store: added from the CLI or the API, applied by the running gateway within seconds, expired, removed."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from mailmoat.cli import app as cli_app
from mailmoat.config import Settings
from mailmoat.policy.site_lists import ListError, normalise
from mailmoat.store.db import Store
from mailmoat.store.list_models import SenderListRow
from mailmoat.store.models import MessageRow
from tests.support.browser import ConsoleServer, chromium, chromium_missing, login, logout, wait_ready
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for, write_toml
from tests.support.pg import pg_url  # noqa: F401  (fixture)
from tests.support.webkit import PASSWORD, web_env

ALICE = "alice@victim-corp.com"
runner = CliRunner()


def offer(sender: str, subject: str) -> bytes:
    """Bulk mail that the test's policy holds (content and bulk-wording signs only)."""
    m = EmailMessage()
    m["From"] = f"Deals <{sender}>"
    m["To"] = ALICE
    m["Subject"] = subject
    m["Message-ID"] = f"<{abs(hash(subject))}@{sender.rpartition('@')[2]}>"
    m.set_content('<html><body><p>Amazing prices. <a href="http://offers.example/buy">Click here</a> to order now! '
                  'Unsubscribe <a href="http://offers.example/u">here</a>.</p></body></html>', subtype="html")
    return m.as_bytes()


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    Store(settings.db_url).close()  # the site's record, as `mailmoat serve` creates it
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir})
    result = runner.invoke(cli_app, ["lists", *args, "--config", str(cfg)])
    return result.exit_code, result.output


def verdict_of(store: Store, subject: str) -> tuple[str, list[str]]:
    with store.session() as s:
        row = s.scalar(select(MessageRow).where(MessageRow.subject == subject))
        return (row.action, list(row.reasons)) if row is not None else ("", [])


@pytest.fixture
def lists_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    import mailmoat.policy.site_lists

    monkeypatch.setattr(mailmoat.policy.site_lists, "RELOAD_EVERY", 0.2)  # instead of 10 s
    settings.server.domains = ["victim-corp.com"]
    settings.server.workers = 0
    settings.policy.thresholds.tag = 2.0
    settings.policy.thresholds.quarantine = 3.5
    return settings


def test_the_running_gateway_applies_entries_added_expired_and_removed(lists_settings: Settings) -> None:
    settings = lists_settings
    store = Store(settings.db_url)
    with inprocess_gateway(settings) as gw:

        def send(sender: str, subject: str) -> tuple[str, list[str]]:
            with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                c.sendmail(sender, [ALICE], offer(sender, subject))
            return wait_for(lambda: verdict_of(store, subject)[0] and verdict_of(store, subject), what=subject)  # type: ignore[no-any-return]

        action, _ = send("deals@offers.example", "Offer one!!!")
        assert action == "quarantine"
        # Denied while the gateway runs: the next message from the domain is rejected; after the
        # 250 that means held, never bounced.
        code, out = cli(settings, "deny", "domain", "@Offers.Example.", "--note", "a week of junk")
        assert code == 0 and "added #1 deny domain offers.example" in out
        time.sleep(0.5)
        action, reasons = send("news@mail.offers.example", "Offer two!!!")
        assert action == "quarantine", reasons
        assert "denylisted: sender domain mail.offers.example is on the deny list (offers.example)" in reasons
        assert any("rejected after acceptance" in r for r in reasons)
        # Allowed: delivered whatever the engines say.
        code, out = cli(settings, "allow", "sender", "<Promo@Friendly.example>", "--days", "30")
        assert code == 0 and "added #2 allow sender promo@friendly.example, until" in out
        time.sleep(0.5)
        action, reasons = send("promo@friendly.example", "Friendly offer!!!")
        assert action == "deliver" and any("is on the allow list" in r for r in reasons)
        assert wait_for(lambda: maildir_copies(settings.mail_dir, ALICE), what="the allowed copy")
        # Expired: no longer applied.
        with store.session() as s:
            s.execute(update(SenderListRow).where(SenderListRow.id == 2).values(expires_at=time.time() - 1))
        time.sleep(0.5)
        assert send("promo@friendly.example", "Friendly offer again!!!")[0] == "quarantine"
        code, out = cli(settings, "list", "--format", "json")
        assert [(e["id"], e["list"], e["value"], e["note"]) for e in json.loads(out)["items"]] == [
            (1, "deny", "offers.example", "a week of junk")
        ]
        # Removed: the domain's mail is judged again.
        code, out = cli(settings, "remove", "1", "7")
        assert code == 1 and "removed #1 deny domain offers.example" in out and "no entry #7" in out
        time.sleep(0.5)
        assert send("deals@offers.example", "Offer three!!!")[0] == "quarantine"
        code, out = cli(settings, "list")
        assert code == 0 and "no entries" in out
    from mailmoat.store.audit import read_audit

    with store.session() as s:
        _, rows = read_audit(s, action="list.")
    store.close()
    assert [(r["action"], r["target"]) for r in rows] == [
        ("list.remove", "deny:domain:offers.example"), ("list.add", "allow:sender:promo@friendly.example"),
        ("list.add", "deny:domain:offers.example"),
    ]
    assert all(r["actor"].startswith("cli:") and r["source"] == "cli" for r in rows)


async def one_retention_run(store: Store, settings: Settings) -> None:
    from mailmoat.store.retention import run_retention

    stop = asyncio.Event()
    task = asyncio.create_task(run_retention(store, settings, stop))

    def listed() -> bool:
        with store.session() as s:
            return s.scalar(select(SenderListRow.id).where(SenderListRow.value == "x@gone.example")) is not None

    deadline = time.monotonic() + 30
    try:
        while await asyncio.to_thread(listed):
            assert time.monotonic() < deadline, "the retention run left the expired entry"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


def test_expired_entries_leave_the_table_with_the_hourly_purge(settings: Settings) -> None:
    from mailmoat.policy.site_lists import add, purge_expired
    from mailmoat.store.audit import read_audit

    store = Store(settings.db_url)
    now = time.time()
    try:
        with store.session() as s:
            add(s, "deny", "domain", "old-wave.example", days=1, now=now - 2 * 86400, by="analyst")  # expired yesterday
            add(s, "deny", "domain", "this-week.example", days=7, now=now, by="analyst")
            add(s, "allow", "sender", "ceo@partner.example", by="admin")  # never expires
            s.commit()
        assert purge_expired(store, now) == 1
        assert purge_expired(store, now) == 0
        with store.session() as s:  # the gateway's hourly retention run does the same
            add(s, "deny", "sender", "x@gone.example", days=1, now=now - 2 * 86400)
            s.commit()
        asyncio.run(one_retention_run(store, settings))
        with store.session() as s:
            assert sorted(r.value for r in s.scalars(select(SenderListRow))) == ["ceo@partner.example", "this-week.example"]
            _, rows = read_audit(s, action="list.expired")
        assert [(r["actor"], r["target"], r["detail"]["created_by"]) for r in rows] == [
            ("system", "deny:sender:x@gone.example", ""), ("system", "deny:domain:old-wave.example", "analyst")]
    finally:
        store.close()


@pytest.mark.parametrize(("kind", "value", "problem"), [
    ("domain", "com", "public suffix"),
    ("domain", "co.uk", "public suffix"),
    ("domain", "not a domain", "not a domain name"),
    ("sender", "nobody", "not an email address"),
    ("ip", "0.0.0.0/0", "wider than /8"),
    ("ip", "2001:db8::/16", "wider than /32"),
    ("ip", "10.0.0.300", "not an IP address"),
    ("url", "https://x.example/", "kind must be one of"),
])
def test_entries_that_would_match_too_much_or_nothing_are_refused(kind: str, value: str, problem: str) -> None:
    with pytest.raises(ListError, match=problem):
        normalise(kind, value)


def test_entries_are_kept_in_one_form() -> None:
    assert normalise("sender", " <Alice@Partner.Example> ") == "alice@partner.example"
    assert normalise("domain", "@Partner.Example.") == "partner.example"
    assert normalise("ip", "192.0.2.77/24") == "192.0.2.0/24"
    assert normalise("ip", "2001:db8::1") == "2001:db8::1/128"


def test_the_cli_says_why_an_entry_is_refused(lists_settings: Settings) -> None:
    code, out = cli(lists_settings, "deny", "domain", "com")
    assert code == 2 and "public suffix" in out


def test_a_list_exported_elsewhere_is_imported_line_by_line(lists_settings: Settings, tmp_path: Path) -> None:
    exported = tmp_path / "blocked.txt"
    exported.write_text(
        "# blocked senders, exported 2026-11-30\n"
        "Evil.Example\n@phish.example.net   # lookalike of our bank\n<Payroll@Fraud.example>\n"
        "203.0.113.9\n198.51.100.0/24\n\nco.uk\nnot a domain\nevil.example\n",
        encoding="utf-8",
    )
    code, out = cli(lists_settings, "import", "deny", str(exported), "--note", "from the old gateway")
    assert code == 1, out
    assert "deny: 5 added, 1 updated, 2 refused" in out
    assert "line 8: co.uk is a public suffix" in out and "line 9: 'not a domain' is not a domain name" in out
    code, out = cli(lists_settings, "list", "--format", "json")
    assert sorted((e["kind"], e["value"], e["note"]) for e in json.loads(out)["items"]) == [
        ("domain", "evil.example", "from the old gateway"), ("domain", "phish.example.net", "from the old gateway"),
        ("ip", "198.51.100.0/24", "from the old gateway"), ("ip", "203.0.113.9/32", "from the old gateway"),
        ("sender", "payroll@fraud.example", "from the old gateway"),
    ]
    code, out = cli(lists_settings, "import", "grey", str(exported))
    assert code == 2 and "allow or deny" in out
    from mailmoat.store.audit import read_audit

    with Store(lists_settings.db_url).session() as s:
        _, rows = read_audit(s, action="list.add")
    assert len(rows) == 6 and all(r["detail"]["import"] == str(exported) for r in rows)


def test_api_analysts_deny_admins_allow_and_remove(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        c = env.client

        def post(path: str, role: str, body: dict[str, Any]) -> Any:
            return c.post(f"/api/v1/lists/{path}", json=body, headers=env.as_role(role))

        r = post("deny", "analyst", {"kind": "domain", "value": "evil.example", "note": "phishing wave"})
        assert r.status_code == 201 and r.json()["value"] == "evil.example" and r.json()["new"] is True
        assert post("deny", "analyst", {"kind": "domain", "value": "EVIL.example", "days": 7}).json()["new"] is False
        assert post("allow", "analyst", {"kind": "sender", "value": "ceo@partner.example"}).status_code == 403
        assert post("deny", "auditor", {"kind": "ip", "value": "192.0.2.1"}).status_code == 403
        r = post("allow", "admin", {"kind": "sender", "value": "ceo@partner.example"})
        assert r.status_code == 201
        bad = post("deny", "analyst", {"kind": "ip", "value": "0.0.0.0/0"})
        assert bad.status_code == 422 and "wider than /8" in bad.text
        listed = c.get("/api/v1/lists", headers=env.as_role("auditor")).json()["items"]
        # The analyst's 7 days did not shorten the entry's life (no expiry): only admins may end one early.
        assert [(e["list"], e["kind"], e["value"], e["expires_at"] > 0) for e in listed] == [
            ("allow", "sender", "ceo@partner.example", False), ("deny", "domain", "evil.example", False),
        ]
        assert c.delete(f"/api/v1/lists/{listed[0]['id']}", headers=env.as_role("analyst")).status_code == 403
        assert c.delete(f"/api/v1/lists/{listed[0]['id']}", headers=env.as_role("admin")).json()["removed"] is True
        assert c.delete(f"/api/v1/lists/{listed[0]['id']}", headers=env.as_role("admin")).status_code == 404
        assert [e["value"] for e in c.get("/api/v1/lists", headers=env.as_role("auditor")).json()["items"]] == ["evil.example"]
        assert [a["actor"] for a in env.audit("list.add")] == ["analyst", "analyst", "admin"]


@pytest.mark.browser
@pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "chromium present")
def test_lists_in_the_console(tmp_path: Path) -> None:
    with web_env(tmp_path / "env") as env:
        settings, held = env.settings, env.ids["held"]
        sender = env.client.get(f"/api/v1/messages/{held}", headers=env.as_role("admin")).json()["from_addr"]
        from mailmoat.digest import safe_senders

        safe_senders.add(env.store, "li.na@victim-corp.com", "deals@offers.example", "digest")  # chosen on a digest
        with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: d.accept())
            # An analyst may deny but not allow.
            login(page, web.url, "analyst", PASSWORD)
            page.goto(f"{web.url}/messages/{held}")
            wait_ready(page)
            assert page.locator("#allow-sender").count() == 0
            page.click("#deny-sender")
            page.wait_for_selector("#flash.ok")
            page.goto(f"{web.url}/lists")
            wait_ready(page)
            assert page.locator(f"#lists-table tr[data-value='{sender}'][data-list='deny']").count() == 1
            assert page.locator("#list-list option[value='allow']").count() == 0
            assert page.locator("#lists-table button.danger").count() == 0
            # A recipient's safe sender: an analyst may take it off (it only makes filtering stricter).
            safe_row = "#safe-table tr[data-recipient='li.na@victim-corp.com'][data-sender='deals@offers.example']"
            page.click(f"{safe_row} button.remove-safe")
            page.wait_for_selector(safe_row, state="detached")
            logout(page, web.url)
            # An admin adds an allow entry for a domain, with an expiry, and removes the deny entry.
            login(page, web.url, "admin", PASSWORD)
            page.goto(f"{web.url}/lists")
            wait_ready(page)
            page.select_option("#list-list", "allow")
            page.select_option("#list-kind", "domain")
            page.fill("#list-value", "Partner.Example")
            page.fill("#list-note", "our auditors")
            page.fill("#list-days", "30")
            page.click("#list-submit")
            page.wait_for_selector("#lists-table tr[data-value='partner.example'][data-list='allow']")
            if shots := os.environ.get("MAILMOAT_SCREENSHOTS"):  # a picture to look at, on request
                page.screenshot(path=str(Path(shots) / "lists.png"), full_page=True)
            page.click(f"#lists-table tr[data-value='{sender}'] button.danger")
            page.wait_for_selector(f"#lists-table tr[data-value='{sender}']", state="detached")
            assert errors == []
        listed = env.client.get("/api/v1/lists", headers=env.as_role("auditor")).json()["items"]
        assert [(e["list"], e["kind"], e["value"], e["note"], e["expires_at"] > 0) for e in listed] == [
            ("allow", "domain", "partner.example", "our auditors", True)
        ]
        assert [a["actor"] for a in env.audit("list.add")] == ["analyst", "admin"]


def a_rival_adds_first(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The first `site_lists.add` meets a rival's insert of the same entry, committed between its
    look-up and its own insert; the list returned says whether that happened."""
    import mailmoat.policy.site_lists as site_lists

    real_add = site_lists.add
    raced: list[bool] = []

    def add_after_a_rival(s: Any, list_: str, kind: str, value: str, **kw: Any) -> Any:
        if not raced:
            raced.append(True)
            with store.session() as other:
                real_add(other, list_, kind, value, note="rival", by="bob")
            s.add(SenderListRow(list=list_, kind=kind, value=normalise(kind, value), note="", created_by="",
                                created_at=0.0, expires_at=0.0))
            s.flush()
        return real_add(s, list_, kind, value, **kw)

    monkeypatch.setattr(site_lists, "add", add_after_a_rival)
    return raced


def test_two_people_adding_the_same_entry_at_once_both_succeed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.policy.site_lists as site_lists

    store = Store(settings.db_url)
    raced = a_rival_adds_first(store, monkeypatch)
    entry, new = site_lists.add_to_store(store, "deny", "domain", "evil.example", note="mine", by="alice")
    assert raced and not new
    # The rival's entry stays theirs; alice's note is added to it (she may not take it over).
    assert (entry["value"], entry["note"], entry["created_by"]) == ("evil.example", "rival | alice: mine", "bob")
    with store.session() as s:
        assert [(r.value, r.note) for r in site_lists.entries(s)] == [("evil.example", "rival | alice: mine")]
    store.close()


def test_an_import_meeting_an_entry_added_meanwhile_still_imports(lists_settings: Settings, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.policy.site_lists as site_lists

    store = Store(lists_settings.db_url)
    raced = a_rival_adds_first(store, monkeypatch)  # an analyst denies the first line meanwhile
    exported = tmp_path / "blocked.txt"
    exported.write_text("evil.example\nphish.example.net\n203.0.113.9\n", encoding="utf-8")
    code, out = cli(lists_settings, "import", "deny", str(exported), "--note", "from the old gateway")
    assert raced and code == 0, out
    assert "deny: 2 added, 1 updated, 0 refused" in out
    with store.session() as s:
        assert sorted((r.value, r.note) for r in site_lists.entries(s)) == [
            ("203.0.113.9/32", "from the old gateway"), ("evil.example", "from the old gateway"),
            ("phish.example.net", "from the old gateway"),
        ]
    store.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_nodes_add_the_same_entry_at_once_and_each_sees_the_others(settings: Settings, db: str,
                                                                      request: pytest.FixtureRequest) -> None:
    import threading

    from mailmoat.policy.site_lists import StoreLists, add_to_store

    if db == "postgresql":
        settings.db = request.getfixturevalue("pg_url")
    Store(settings.db_url).close()  # the schema, before the nodes race
    results: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def node(i: int) -> None:
        store = Store(settings.db_url)  # each "node" with its own connection pool
        try:
            start.wait()
            results.append(add_to_store(store, "deny", "domain", "evil.example", note=f"node {i}", by=f"analyst{i}")[1])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=node, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and sorted(results) == [False, False, False, True]
    other = Store(settings.db_url)
    try:
        seen = StoreLists(other, every=0)()
        assert seen.deny_domains == frozenset({"evil.example"}) and seen.allow_domains == frozenset()
        add_to_store(other, "allow", "ip", "192.0.2.7")
        assert [str(n) for n in StoreLists(other, every=0)().allow_ips] == ["192.0.2.7/32"]
    finally:
        other.close()
