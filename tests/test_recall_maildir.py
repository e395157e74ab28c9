"""Recall through the embedded Maildir store: plan, run, verify, restore, resume, idempotence."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mailmoat.config import Settings
from mailmoat.recall.auto import condemn_message, on_indicators
from mailmoat.recall.backends.base import CopyResult
from mailmoat.recall.backends.maildir import MaildirBackend
from mailmoat.recall.engine import RecallEngine, RecallError
from mailmoat.recall.selection import SelectionError, Selector
from mailmoat.store.audit_models import AuditRow
from tests.support.recallkit import SqliteStore, find_copy, record


@pytest.fixture
def store(settings: Settings) -> SqliteStore:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    return SqliteStore(settings.data_path / "t.db")


def rcpts(n: int) -> list[str]:
    return [f"user{i}@corp.example" for i in range(n)]


def visible(root: Path, rcpt: str, tid: str) -> list[Path]:
    return [p for p in find_copy(root, rcpt, tid) if not p.parent.parent.name.startswith(".MailmoatRecall")]


def hidden(root: Path, rcpt: str, tid: str) -> bool:
    return any(p.parent.parent.name.startswith(".MailmoatRecall") for p in find_copy(root, rcpt, tid))


async def test_recall_moves_every_copy_from_any_folder_and_restores_exactly(settings: Settings, store: SqliteStore) -> None:
    root = settings.mail_dir
    users = rcpts(6)
    tids = record(store, root, "01MSG0000000000000000000AA", users)
    record(store, root, "01MSG0000000000000000000BB", users[:2], subject="Lunch menu", url_domain="canteen.example")
    # The users filed and read their copies: one moved to a folder and marked seen+flagged, one read in INBOX.
    (root / users[1] / ".Finance" / "cur").mkdir(parents=True)
    (root / users[1] / ".Finance" / "new").mkdir()
    (root / users[1] / ".Finance" / "tmp").mkdir()
    src = find_copy(root, users[1], tids[1])[0]
    filed = root / users[1] / ".Finance" / "cur" / (src.name + ":2,FS")
    os.rename(src, filed)
    os.utime(filed, (1_700_000_000, 1_700_000_000))
    src2 = find_copy(root, users[2], tids[2])[0]
    read = root / users[2] / "cur" / (src2.name + ":2,S")
    os.rename(src2, read)
    # One user already deleted it.
    find_copy(root, users[3], tids[3])[0].unlink()

    from mailmoat import metrics

    recalled_before = metrics.RECALL_COPIES.labels(state="recalled")._value.get()
    engine = RecallEngine(settings, store)
    preview = engine.preview(Selector(subject="工资补贴"))
    assert (preview.messages, preview.copies) == (1, 6)
    job = engine.plan(Selector(subject="工资补贴"), "analyst", "QR phishing wave")
    st = await engine.run(job, "analyst")
    assert st["state"] == "done"
    assert st["counts"] == {"recalled": 5, "not_found": 1}
    assert metrics.RECALL_COPIES.labels(state="recalled")._value.get() == recalled_before + 5
    for u, t in zip(users, tids, strict=True):
        assert visible(root, u, t) == []
    # The other message is untouched.
    assert len(list((root / users[0] / "new").iterdir())) == 1
    by_tid = {c["tracking_id"]: c for c in st["copies"]}
    assert by_tid[tids[1]]["folder"] == "Finance"
    assert sorted(by_tid[tids[1]]["flags"]) == ["\\Flagged", "\\Seen"]
    assert all(c["verified"] for c in st["copies"] if c["state"] == "recalled")
    hidden = list((root / users[1] / ".MailmoatRecall.Finance" / "cur").iterdir())
    assert [p.name for p in hidden] == [filed.name]
    # Nothing was put where a mail client would announce new mail.
    assert not list((root / users[0] / ".MailmoatRecall" / "new").iterdir())
    assert len(list((root / users[0] / ".MailmoatRecall" / "cur").iterdir())) == 1

    # Running the same job again does no harm.
    st2 = await engine.run(job, "analyst")
    assert st2["counts"] == st["counts"]

    # Restore one copy, then the rest: each back in its folder, same name (flags) and same date.
    st3 = await engine.restore(job, "analyst", tracking_ids=[tids[1]])
    assert {c["tracking_id"]: c["state"] for c in st3["copies"]}[tids[1]] == "restored"
    assert filed.exists() and int(filed.stat().st_mtime) == 1_700_000_000
    st4 = await engine.restore(job, "analyst")
    assert st4["state"] == "restored"
    assert read.exists()
    for u, t in zip(users, tids, strict=True):
        expected = 0 if u == users[3] else 1
        assert len(visible(root, u, t)) == expected

    with store.session() as s:
        actions = [a.action for a in s.query(AuditRow).order_by(AuditRow.id)]
    assert actions[:2] == ["recall.plan", "recall.run"] and actions.count("recall.restore") == 2


async def test_selectors_combine_and_empty_selection_is_refused(settings: Settings, store: SqliteStore) -> None:
    root = settings.mail_dir
    record(store, root, "01MSG0000000000000000000CC", rcpts(3), url_domain="evil-bank.example")
    record(store, root, "01MSG0000000000000000000DD", rcpts(3), url_domain="evil-bank.example", sender="hr@corp.example")
    engine = RecallEngine(settings, store)
    assert engine.preview(Selector(url_domain="evil-bank.example")).copies == 6
    assert engine.preview(Selector(url_domain="evil-bank.example", sender="corp.example")).copies == 3
    assert engine.preview(Selector(url="evil-bank.example/login", recipient="user1@corp.example")).copies == 2
    assert engine.preview(Selector(tracking_id="01MSG0000000000000000000CC")).copies == 3
    assert engine.preview(Selector(tracking_id="01MSG0000000000000000000CC-0002")).copies == 1
    assert engine.preview(Selector(message_id="01MSG0000000000000000000CC@evil.example")).copies == 3
    assert engine.preview(Selector(since="1h", url_domain="evil-bank.example")).copies == 6
    assert engine.preview(Selector(until="2d", url_domain="evil-bank.example")).copies == 0
    with pytest.raises(SelectionError):
        engine.preview(Selector())
    with pytest.raises(SelectionError):
        engine.preview(Selector(since="yesterday-ish"))
    # A recipient is recorded as the sender typed it; it is found whatever case the analyst types.
    record(store, root, "01MSG0000000000000000000EE", ["Alice.Wong@Corp.example"], url_domain="evil-bank.example")
    for typed in ("alice.wong@corp.example", "Alice.Wong@Corp.example", "ALICE.WONG@CORP.EXAMPLE"):
        assert engine.preview(Selector(url_domain="evil-bank.example", recipient=typed)).copies == 1, typed
    # SQLite's lower() folds A-Z only: an address with other capitals is found as it was written.
    record(store, root, "01MSG0000000000000000000FF", ["MÜLLER@Corp.example"], url_domain="evil-bank.example")
    assert engine.preview(Selector(url_domain="evil-bank.example", recipient="MÜLLER@corp.example")).copies == 1
    # A job over no copy is refused, not stored as a job "done" that found nothing.
    with pytest.raises(SelectionError, match="nothing to recall"):
        engine.plan(Selector(url_domain="nowhere.example"), "analyst")
    assert engine.list_jobs(10) == []


class FlakyBackend(MaildirBackend):
    """Fails the first recall attempt for one mailbox, like a locked or unreachable mailbox."""

    def __init__(self, settings: Settings, flaky: str, failures: int) -> None:
        super().__init__(settings)
        self.flaky = flaky
        self.failures = failures

    def _recall_one(self, ref, mode):  # type: ignore[no-untyped-def]
        if ref.mailbox == self.flaky and self.failures > 0:
            self.failures -= 1
            return CopyResult(ref.tracking_id, "failed", reason="mailbox locked")
        return super()._recall_one(ref, mode)


async def test_failing_mailbox_is_retried_and_reported(settings: Settings, store: SqliteStore) -> None:
    users = rcpts(4)
    tids = record(store, settings.mail_dir, "01MSG0000000000000000000EE", users)
    engine = RecallEngine(settings, store, backend=FlakyBackend(settings, users[2], failures=1))
    st = await engine.run(engine.plan(Selector(mail_id="01MSG0000000000000000000EE"), "a"), "a")
    assert st["state"] == "done" and st["counts"] == {"recalled": 4}
    assert {c["tracking_id"]: c["attempts"] for c in st["copies"]}[tids[2]] == 1

    tids2 = record(store, settings.mail_dir, "01MSG0000000000000000000FF", users)
    engine2 = RecallEngine(settings, store, backend=FlakyBackend(settings, users[0], failures=99))
    st2 = await engine2.run(engine2.plan(Selector(mail_id="01MSG0000000000000000000FF"), "a"), "a")
    assert st2["state"] == "failed"
    failed = [c for c in st2["copies"] if c["state"] == "failed"]
    assert [c["tracking_id"] for c in failed] == [tids2[0]]
    assert failed[0]["reason"] == "mailbox locked" and failed[0]["attempts"] == settings.recall.max_retries


class CrashingBackend(MaildirBackend):
    """Dies after a number of copies, like a process killed mid-job."""

    def __init__(self, settings: Settings, after: int) -> None:
        super().__init__(settings)
        self.left = after
        self.calls: list[str] = []

    def _recall_one(self, ref, mode):  # type: ignore[no-untyped-def]
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left -= 1
        self.calls.append(ref.tracking_id)
        return super()._recall_one(ref, mode)


async def test_killed_job_resumes_without_double_actions(settings: Settings, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.recall.engine as eng

    monkeypatch.setattr(eng, "BATCH", 3)
    users = rcpts(10)
    record(store, settings.mail_dir, "01MSG0000000000000000000GG", users)
    first = RecallEngine(settings, store, backend=CrashingBackend(settings, after=4))
    job = first.plan(Selector(mail_id="01MSG0000000000000000000GG"), "a")
    with pytest.raises(KeyboardInterrupt):
        await first.run(job, "a")
    assert list(RecallEngine(settings, store).resumable()) == [job]
    # A new process may take over once the old lease has expired.
    with store.session() as s:
        from mailmoat.store.recall_models import RecallJobRow

        row = s.get(RecallJobRow, job)
        assert row is not None
        row.lease_until = time.time() - 1
        s.commit()
    second_backend = CrashingBackend(settings, after=100)
    second = RecallEngine(settings, store, backend=second_backend)
    st = await second.run(job, "a")
    # The copy moved just before the kill (its state never recorded) is found hidden, not moved again.
    assert st["state"] == "done" and st["counts"] == {"recalled": 9, "already_gone": 1}
    # The copies of the first finished batch were not acted on again.
    assert len(second_backend.calls) == 10 - 3
    restored = await second.restore(job, "a")
    assert restored["state"] == "restored" and restored["counts"] == {"restored": 10}
    assert all(len(visible(settings.mail_dir, u, f"01MSG0000000000000000000GG-{i:04d}")) == 1 for i, u in enumerate(users))


async def test_live_lease_blocks_a_second_runner(settings: Settings, store: SqliteStore) -> None:
    record(store, settings.mail_dir, "01MSG0000000000000000000HH", rcpts(2))
    a = RecallEngine(settings, store)
    job = a.plan(Selector(mail_id="01MSG0000000000000000000HH"), "a")
    assert a._take_lease(job)
    b = RecallEngine(settings, store)
    b.owner = "other-node:1"
    with pytest.raises(RecallError, match="another process"):
        await b.run(job, "b")


async def test_delete_mode_keeps_a_vault_copy_for_restore(settings: Settings, store: SqliteStore) -> None:
    settings.recall.mode = "delete"
    users = rcpts(2)
    tids = record(store, settings.mail_dir, "01MSG0000000000000000000II", users)
    before = find_copy(settings.mail_dir, users[0], tids[0])[0].read_bytes()
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id="01MSG0000000000000000000II"), "a")
    st = await engine.run(job, "a")
    assert st["counts"] == {"recalled": 2}
    assert find_copy(settings.mail_dir, users[0], tids[0]) == []
    assert not (settings.mail_dir / users[0] / ".MailmoatRecall").exists()
    await engine.restore(job, "a")
    assert find_copy(settings.mail_dir, users[0], tids[0])[0].read_bytes() == before


async def test_approval_gate_for_large_jobs(settings: Settings, store: SqliteStore) -> None:
    settings.recall.approval_above = 3
    record(store, settings.mail_dir, "01MSG0000000000000000000JJ", rcpts(5))
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id="01MSG0000000000000000000JJ"), "analyst")
    with pytest.raises(RecallError, match="approval"):
        await engine.run(job, "analyst")
    engine.approve(job, "admin")
    assert (await engine.run(job, "analyst"))["state"] == "done"


async def test_indicator_recall_leaves_staff_reports_with_the_security_team(settings: Settings, store: SqliteStore) -> None:
    users = rcpts(2)
    wave = record(store, settings.mail_dir, "01MSG0000000000000000000RA", users, url_domain="qr-subsidy.example")
    report = record(store, settings.mail_dir, "01MSG0000000000000000000RB", ["phish@example.org"], sender="bob@example.org",
                    url_domain="qr-subsidy.example", symbols=("STAFF_REPORT",))
    outs = await on_indicators(RecallEngine(settings, store), [("domain", "qr-subsidy.example")])
    assert outs[0].copies == 2
    assert all(hidden(settings.mail_dir, u, t) for u, t in zip(users, wave, strict=True))
    assert not hidden(settings.mail_dir, "phish@example.org", report[0])
    # Alone, the exclusion selects nothing: a recall must still name what it is about.
    assert Selector(not_symbol="STAFF_REPORT").is_empty()


async def test_automatic_recall_on_condemn_and_new_indicator(settings: Settings, store: SqliteStore) -> None:
    users = rcpts(3)
    t1 = record(store, settings.mail_dir, "01MSG0000000000000000000KK", users, url_domain="qr-subsidy.example")
    t2 = record(store, settings.mail_dir, "01MSG0000000000000000000LL", users, url_domain="fine.example")
    old = record(store, settings.mail_dir, "01MSG0000000000000000000MM", users, url_domain="qr-subsidy.example",
                 received_at=time.time() - 30 * 86400)
    engine = RecallEngine(settings, store)
    outs = await on_indicators(engine, [("domain", "qr-subsidy.example")], source="feed.txt")
    assert [o.state for o in outs] == ["done"] and outs[0].copies == 3
    assert all(hidden(settings.mail_dir, u, t) for u, t in zip(users, t1, strict=True))
    # Outside the 7-day look-back: left alone.
    assert not any(hidden(settings.mail_dir, u, t) for u, t in zip(users, old, strict=True))
    settings.recall.auto = "approval"
    out = await condemn_message(engine, "01MSG0000000000000000000LL", "admin", "reported by users")
    assert out.state == "awaiting_approval" and out.copies == 3
    assert not any(hidden(settings.mail_dir, u, t) for u, t in zip(users, t2, strict=True))


async def test_a_listed_url_on_a_shared_host_recalls_the_mail_that_linked_its_page(settings: Settings, store: SqliteStore) -> None:
    # A feed lists one file of an attacker's storage bucket; the delivered copies linked another file
    # there. Mail linking somebody else's bucket on the same host stays.
    from mailmoat.store.models import IndicatorRow

    users = rcpts(2)
    wave = record(store, settings.mail_dir, "01MSG0000000000000000000PA", users, url_domain="googleapis.com")
    other = record(store, settings.mail_dir, "01MSG0000000000000000000PB", ["user9@corp.example"], url_domain="googleapis.com")
    with store.session() as s:
        s.add(IndicatorRow(message_id="01MSG0000000000000000000PA", kind="url_page", value="storage.googleapis.com/newera1"))
        s.add(IndicatorRow(message_id="01MSG0000000000000000000PB", kind="url_page", value="storage.googleapis.com/someone"))
        s.commit()
    outs = await on_indicators(RecallEngine(settings, store), [("url", "https://storage.googleapis.com/newera1/index.html")])
    assert [o.state for o in outs] == ["done"] and outs[0].copies == 2
    assert all(hidden(settings.mail_dir, u, t) for u, t in zip(users, wave, strict=True))
    assert not hidden(settings.mail_dir, "user9@corp.example", other[0])


def test_recall_cli_can_leave_out_staff_reports(settings: Settings, store: SqliteStore) -> None:
    from typer.testing import CliRunner

    from mailmoat.cli import app

    users = rcpts(2)
    wave = record(store, settings.mail_dir, "01MSG0000000000000000000CA", users, url_domain="cli-wave.example")
    report = record(store, settings.mail_dir, "01MSG0000000000000000000CB", ["phish@corp.example"], sender="bob@corp.example",
                    url_domain="cli-wave.example", symbols=("STAFF_REPORT",))
    where = ["--data-dir", settings.data_dir, "--db", f"sqlite:///{settings.data_path / 't.db'}"]
    res = CliRunner().invoke(app, ["recall", "run", "--url-domain", "cli-wave.example", "--not-symbol", "STAFF_REPORT", "--yes", *where])
    assert res.exit_code == 0, res.output
    assert all(hidden(settings.mail_dir, u, t) for u, t in zip(users, wave, strict=True))
    assert not hidden(settings.mail_dir, "phish@corp.example", report[0])
    res = CliRunner().invoke(app, ["recall", "plan", "--not-symbol", "STAFF_REPORT", "--dry-run", *where])
    assert res.exit_code == 2 and "name at least one selector" in res.output


async def test_restore_is_refused_while_the_job_runs_or_is_restored_elsewhere(settings: Settings, store: SqliteStore) -> None:
    users = rcpts(3)
    tids = record(store, settings.mail_dir, "01MSG0000000000000000000JJ", users)
    a = RecallEngine(settings, store)
    job = a.plan(Selector(mail_id="01MSG0000000000000000000JJ"), "a")
    await a.run(job, "a")
    # Another node's run (or the task queue's) holds the job: a restore now would be undone by it.
    b = RecallEngine(settings, store)
    b.owner = "other-node:1"
    assert b._take_lease(job)
    with pytest.raises(RecallError, match="being run or restored elsewhere"):
        await a.restore(job, "a")
    assert all(visible(settings.mail_dir, u, t) == [] for u, t in zip(users, tids, strict=True))
    b._release_lease(job)

    # Two restores at once in one process: one puts the copies back, the other is refused.
    gate = asyncio.Event()
    slow = a.backend.restore

    async def held(copies: list[Any]) -> list[CopyResult]:
        await gate.wait()
        return await slow(copies)

    a.backend.restore = held  # type: ignore[method-assign]
    first = asyncio.ensure_future(a.restore(job, "a"))
    await asyncio.sleep(0.05)
    with pytest.raises(RecallError, match="being run or restored elsewhere"):
        await RecallEngine(settings, store).restore(job, "b")
    gate.set()
    assert (await first)["state"] == "restored"
    assert all(len(visible(settings.mail_dir, u, t)) == 1 for u, t in zip(users, tids, strict=True))
    # Done, the lease is free again: the job can be looked at, and a new restore is a no-op, not an error.
    assert (await RecallEngine(settings, store).restore(job, "b"))["state"] == "restored"


async def test_a_job_that_never_ran_or_a_copy_it_lacks_cannot_be_restored(settings: Settings, store: SqliteStore) -> None:
    settings.recall.approval_above = 1
    record(store, settings.mail_dir, "01MSG0000000000000000000KK", rcpts(2))
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id="01MSG0000000000000000000KK"), "analyst")
    assert engine.status(job)["state"] == "awaiting_approval"
    # Restoring it would mark it settled and shut out the administrator's approval.
    with pytest.raises(RecallError, match="never ran"):
        await engine.restore(job, "analyst")
    assert engine.status(job)["state"] == "awaiting_approval"
    engine.approve(job, "admin")
    await engine.run(job, "admin")
    with pytest.raises(RecallError, match="has no copy NOPE"):
        await engine.restore(job, "admin", tracking_ids=["NOPE"])


@pytest.mark.parametrize("mode", ["move", "delete"])
async def test_a_copy_the_user_also_filed_in_another_folder_is_recalled_and_restored_from_both(
        settings: Settings, store: SqliteStore, mode: str) -> None:
    """The user kept the message in INBOX and copied it to Archive: both files are the copy. Recall
    hides both (one run, verified), and restore puts each back in its own folder."""
    settings.recall.mode = mode
    users = rcpts(2)
    tids = record(store, settings.mail_dir, "01MSG0000000000000000000LL", users)
    inbox = find_copy(settings.mail_dir, users[0], tids[0])[0]
    archive = settings.mail_dir / users[0] / ".Archive"
    for sub in ("cur", "new", "tmp"):
        (archive / sub).mkdir(parents=True)
    filed = archive / "cur" / (inbox.name + ":2,S")
    filed.write_bytes(inbox.read_bytes())
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id="01MSG0000000000000000000LL"), "analyst")
    st = await engine.run(job, "analyst")
    assert st["state"] == "done" and st["counts"] == {"recalled": 2}, st
    assert visible(settings.mail_dir, users[0], tids[0]) == []
    restored = await engine.restore(job, "analyst")
    assert restored["state"] == "restored" and restored["counts"] == {"restored": 2}
    assert sorted(p.parent.parent.name for p in visible(settings.mail_dir, users[0], tids[0])) == [".Archive", users[0]]
    assert inbox.exists() and filed.exists() and inbox.read_bytes() == filed.read_bytes()
    assert not hidden(settings.mail_dir, users[0], tids[0])


async def test_restoring_a_job_leaves_the_copies_another_job_recalled(settings: Settings, store: SqliteStore) -> None:
    """Job A recalled a reported phish; job B, run later over a wider selection, found its copies
    already hidden. Restoring B puts back B's own mail only: A's recall stands until A is restored."""
    users = rcpts(2)
    phish = record(store, settings.mail_dir, "01MSG0000000000000000000MM", users, url_domain="evil-bank.example")
    news = record(store, settings.mail_dir, "01MSG0000000000000000000NN", users, url_domain="evil-bank.example",
                  subject="Newsletter")
    engine = RecallEngine(settings, store)
    a = engine.plan(Selector(mail_id="01MSG0000000000000000000MM", since="0"), "analyst", "reported")
    await engine.run(a, "analyst")
    b = engine.plan(Selector(url_domain="evil-bank.example"), "analyst", "too wide")
    assert (await engine.run(b, "analyst"))["counts"] == {"already_gone": 2, "recalled": 2}
    st = await engine.restore(b, "analyst")
    assert st["state"] == "restored" and st["counts"] == {"left_recalled": 2, "restored": 2}
    assert all(len(visible(settings.mail_dir, u, t)) == 1 for u, t in zip(users, news, strict=True))
    assert all(visible(settings.mail_dir, u, t) == [] for u, t in zip(users, phish, strict=True))
    assert engine.status(a)["counts"] == {"recalled": 2}
    assert (await engine.restore(a, "analyst"))["counts"] == {"restored": 2}  # A's own restore puts them back
    assert all(len(visible(settings.mail_dir, u, t)) == 1 for u, t in zip(users, phish, strict=True))


async def test_a_recall_leaves_the_report_mailbox_alone_unless_it_is_named(settings: Settings, store: SqliteStore) -> None:
    """Colleagues' reports carry the phish's links: a recall by link domain must not take the
    security team's evidence out of the report mailbox, unless the recall names that mailbox."""
    settings.policy.report_addresses = ["Phish@corp.example"]
    record(store, settings.mail_dir, "01MSG0000000000000000000PP", rcpts(2), url_domain="evil-bank.example")
    record(store, settings.mail_dir, "01MSG0000000000000000000QQ", ["phish@corp.example"], url_domain="evil-bank.example",
           subject="FW: verify your account")
    engine = RecallEngine(settings, store)
    assert engine.preview(Selector(url_domain="evil-bank.example")).recipients == rcpts(2)
    named = engine.preview(Selector(url_domain="evil-bank.example", recipient="phish@corp.example"))
    assert named.recipients == ["phish@corp.example"]
