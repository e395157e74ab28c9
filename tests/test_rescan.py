"""Re-scan of retained mail: a new threat indicator condemns delivered mail, which is then recalled."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.model import Envelope
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.rescan import rescan
from mailmoat.scanner import Scanner
from mailmoat.store.db import Store

RAW = (
    b"From: Payroll <payroll@partner.example>\r\nTo: alice@localhost, bob@localhost\r\n"
    b"Subject: Updated salary slip\r\nMessage-ID: <slip-1@partner.example>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Content-Type: text/plain\r\n\r\nYour slip is ready: https://slips.wave-domain.example/view?id=42\r\n"
)


def _copies(root: Path, rcpt: str) -> list[Path]:
    return [p for p in (root / rcpt).rglob("*") if p.is_file() and p.parent.name in ("cur", "new")]


async def _deliver(settings: Settings, store: Store) -> str:
    env = Envelope("payroll@partner.example", ["alice@localhost", "bob@localhost"])
    result = await Scanner(settings, store=store).scan(RAW, env)
    assert result.verdict.action.value in ("deliver", "tag"), result.verdict.reasons
    store.record_message(env, result.message, result.verdict, store.retain_raw(env, RAW, settings.raw_dir))
    await DeliveryService(settings, store).deliver(env, RAW, result.verdict, result.message)
    return env.id


async def test_new_indicator_then_rescan_recalls_what_was_delivered(settings: Settings) -> None:
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    mail_id = await _deliver(settings, store)
    root = settings.mail_dir
    assert all(".MailmoatRecall" not in str(p) for r in ("alice@localhost", "bob@localhost") for p in _copies(root, r))

    engine = RecallEngine(settings, store)
    same = await rescan(engine, Scanner(settings, store=store), "1h")
    assert (same.scanned, same.changed, same.recalls) == (1, 0, [])

    (settings.data_path / "intel").mkdir(parents=True, exist_ok=True)
    (settings.data_path / "intel" / "domain.txt").write_text("wave-domain.example\n", encoding="utf-8")
    report = await rescan(engine, Scanner(settings, store=store), "1h")
    assert report.newly_condemned == [mail_id]
    assert [r.state for r in report.recalls] == ["done"] and report.recalls[0].copies == 2
    for rcpt in ("alice@localhost", "bob@localhost"):
        copies = _copies(root, rcpt)
        assert len(copies) == 1 and copies[0].parent.parent.name.startswith(".MailmoatRecall")
    st = engine.status(report.recalls[0].job_id)
    assert st["trigger"] == "auto:rescan" and "re-scan changed the verdict" in st["reason"]


def test_rescan_command(settings: Settings, tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["rescan", "--data-dir", settings.data_dir])
    assert missing.exit_code == 2 and "no mailmoat data" in missing.output  # nothing recorded to re-scan
    settings.data_path.mkdir(parents=True, exist_ok=True)
    Store(settings.db_url).close()
    res = CliRunner().invoke(app, ["rescan", "--since", "2d", "--format", "json", "--data-dir", settings.data_dir])
    assert res.exit_code == 0, res.output
    assert '"scanned": 0' in res.stdout
    bad = CliRunner().invoke(app, ["rescan", "--since", "the other day", "--data-dir", settings.data_dir])
    assert bad.exit_code == 2 and "cannot read time" in bad.output


async def test_a_deny_entry_then_rescan_recalls_the_senders_delivered_mail(settings: Settings) -> None:
    from mailmoat.policy.site_lists import add_to_store

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    mail_id = await _deliver(settings, store)
    add_to_store(store, "deny", "domain", "partner.example", note="account taken over", by="analyst")
    report = await rescan(RecallEngine(settings, store), Scanner(settings, store=store), "1h")
    assert report.newly_condemned == [mail_id]
    assert [r.state for r in report.recalls] == ["done"] and report.recalls[0].copies == 2
    row = store.get_message(mail_id)
    assert row is not None and row.action == "reject"
    assert "denylisted: sender domain partner.example is on the deny list (partner.example)" in row.reasons


async def test_a_held_message_stays_held_when_a_rescan_would_reject_it(settings: Settings) -> None:
    from mailmoat.digest.listing import offered
    from mailmoat.model import Action, Finding, Verdict
    from mailmoat.pipeline import NO_BACKSCATTER
    from mailmoat.policy.site_lists import add_to_store

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    env = Envelope("payroll@partner.example", ["alice@localhost"])
    held = Verdict(Action.QUARANTINE, 12.0, [Finding("BAYES_SPAM", 12.0, "spam-like words", "classifier", "bayes")], ["test"])
    scanned = await Scanner(settings, store=store).scan(RAW, env)
    store.record_message(env, scanned.message, held, store.retain_raw(env, RAW, settings.raw_dir))
    await DeliveryService(settings, store).deliver(env, RAW, held, scanned.message)
    add_to_store(store, "deny", "sender", "payroll@partner.example")
    report = await rescan(RecallEngine(settings, store), Scanner(settings, store=store), "1h")
    assert (report.changed, report.newly_condemned, report.recalls) == (1, [], [])
    row = store.get_message(env.id)
    assert row is not None and (row.action, row.status) == ("quarantine", "quarantined")
    assert "DENYLISTED" in row.symbols and NO_BACKSCATTER in row.reasons
    assert not offered(settings, row)  # no longer the recipient's to release from a digest
    again = await rescan(RecallEngine(settings, store), Scanner(settings, store=store), "1h")
    assert again.changed == 0
