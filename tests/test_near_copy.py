"""Near copies of condemned mail: sketches, the memory and its file, learning, and the analyzer in the Scanner."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailmoat.analyzers.near_copy import NearCopyAnalyzer
from mailmoat.classify import (
    Classifier,
    ModelError,
    message_tokens,
    model_path,
    model_status,
    near_copy_path,
    nearcopy,
)
from mailmoat.classify.nearcopy import NearCopies, similarity, sketch
from mailmoat.classify.store_learning import remember_verdicts, remembered_in_store
from mailmoat.config import Settings
from mailmoat.model import Envelope
from mailmoat.parse import parse
from tests.support.pg import pg_url  # noqa: F401  (fixture)

LURE_ZH = (
    "各位同事：根据财政部和人力资源社会保障部最新文件精神，2026年第四季度工资补贴已开始发放。"
    "请于本周五前登录下方链接完成补贴申领，核对本人银行卡信息，逾期未领视为自动放弃。"
    "申领需要填写姓名、身份证号、银行卡号及预留手机号，系统审核通过后三个工作日内到账。"
    "如有疑问请联系财务部，感谢配合。"
)
LURE_EN = (
    "Your mailbox has reached its storage limit and incoming messages are being held on the server. "
    "To avoid losing important mail you must verify your account within 24 hours using the secure "
    "portal below. Accounts that are not verified will be suspended and all held messages will be "
    "permanently deleted by the system administrator. Thank you for your cooperation, IT Service Desk."
)
HAM_EN = (
    "Hi team, the quarterly planning meeting moves to Thursday at 10 in the large room on the third "
    "floor. Please bring the draft budget for your group and the list of open hiring requests, and "
    "read the attached notes from last quarter before we meet. Lunch will be provided afterwards. "
    "If you cannot attend, send your numbers to Maria by Wednesday evening so they can be included."
)


def _eml(subject: str, body: str, sender: str = "notice@payroll-center.example") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes()


def _sketch(raw: bytes) -> object:
    return sketch(message_tokens(parse(raw)))


def test_a_campaign_variant_is_near_and_other_mail_is_not() -> None:
    first = sketch(message_tokens(parse(_eml("工资补贴通知", "张伟：" + LURE_ZH + " http://pay-gov.example/a1"))))
    # Another recipient's copy: other greeting, other link, a line added, another subject.
    variant = sketch(
        message_tokens(parse(_eml("关于发放工资补贴的通知", "李娜：" + LURE_ZH + " http://pay-gov.example/zz9\n财务部 2026年11月")))
    )
    english = sketch(message_tokens(parse(_eml("Mailbox full", "Dear user, " + LURE_EN))))
    ham = sketch(message_tokens(parse(_eml("Planning", HAM_EN))))
    assert first is not None and variant is not None and english is not None and ham is not None
    assert similarity(first, variant) >= 0.7
    assert similarity(first, english) < 0.1
    assert similarity(english, ham) < 0.1
    assert similarity(first, first) == 1.0
    # Too little text to compare: no sketch at all.
    assert sketch(message_tokens(parse(_eml("hi", "see you at five")))) is None


def test_memory_add_match_forget_and_evict(monkeypatch: pytest.MonkeyPatch) -> None:
    lure = sketch(message_tokens(parse(_eml("s", LURE_EN))))
    other = sketch(message_tokens(parse(_eml("s", HAM_EN))))
    assert lure is not None and other is not None
    mem = NearCopies()
    mem.add("m1", "phish", lure)
    assert mem.best(other, 0.7) is None
    best = mem.best(lure, 0.7)
    assert best is not None and best.entry.key == "m1" and best.similarity == 1.0
    mem.add("m1", "spam", lure)  # learnt again: replaced, not doubled
    assert len(mem) == 1 and mem.entries["m1"].label == "spam"
    assert mem.forget_like(lure, 0.7) == 1 and len(mem) == 0
    assert mem.best(lure, 0.7) is None
    monkeypatch.setattr(nearcopy, "MAX_ENTRIES", 2)
    for i, values in enumerate((lure, other, lure)):
        mem.add(f"k{i}", "spam", values, added=float(i))
    assert list(mem.entries) == ["k1", "k2"]  # the oldest went first
    assert {m.entry.key for m in mem.matches(lure, 0.7)} == {"k2"}


def test_file_round_trip_and_damage(tmp_path: Path) -> None:
    lure = sketch(message_tokens(parse(_eml("s", LURE_EN))))
    assert lure is not None
    mem = NearCopies()
    mem.add("m1", "phish", lure, added=1_700_000_000.0)
    path = tmp_path / "near_copies.json"
    mem.save(path)
    back = NearCopies.load(path)
    assert back.entries["m1"].values == lure and back.entries["m1"].label == "phish"
    assert back.entries["m1"].added == 1_700_000_000.0
    head, body = path.read_text().split("\n", 1)
    path.write_text(head + "\n" + body.replace("m1", "m2"))
    with pytest.raises(ModelError, match="checksum"):
        NearCopies.load(path)
    path.write_text(json.dumps({"format": "something-else"}) + "\n[]\n")
    with pytest.raises(ModelError, match="not a"):
        NearCopies.load(path)
    path.write_text("not json at all")
    with pytest.raises(ModelError):
        NearCopies.load(path)


def test_learning_remembers_condemned_mail_and_a_release_forgets_it(tmp_path: Path) -> None:
    path = tmp_path / "bayes.model"
    clf = Classifier.open(path)
    raw = _eml("Mailbox full", "Dear alice, " + LURE_EN)
    clf.learn(parse(raw), "phish", key="m1", save=True)
    clf.learn(parse(_eml("Planning", HAM_EN)), "ham", key="m2", save=True)  # unrelated ham keeps it
    on_disk = NearCopies.load(near_copy_path(path))
    assert set(on_disk.entries) == {"m1"} and on_disk.entries["m1"].label == "phish"
    # The administrator releases a copy of it: it was not a threat after all.
    clf = Classifier.open(path)
    clf.learn(parse(_eml("Mailbox full", "Dear bob, " + LURE_EN)), "ham", key="m3", save=True)
    assert len(NearCopies.load(near_copy_path(path))) == 0
    # A keyed verdict reversed (recalled, then released) leaves nothing either.
    clf.learn(parse(raw), "phish", key="m4", save=True)
    assert set(NearCopies.load(near_copy_path(path)).entries) == {"m4"}
    clf.learn(parse(raw), "ham", key="m4", save=True)
    assert len(NearCopies.load(near_copy_path(path))) == 0


def test_a_damaged_file_starts_an_empty_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bayes.model"
    near_copy_path(path).write_text("garbage")
    clf = Classifier.open(path)
    clf.learn(parse(_eml("Mailbox full", LURE_EN)), "spam", key="m1", save=True)
    assert "not read, starting empty" in caplog.text
    assert set(NearCopies.load(near_copy_path(path)).entries) == {"m1"}


def test_train_from_files_names_them_and_starts_anew(settings: Settings, tmp_path: Path) -> None:
    from mailmoat.cli.train import train_dirs

    ham, spam = tmp_path / "ham", tmp_path / "spam"
    ham.mkdir()
    spam.mkdir()
    (ham / "planning.eml").write_bytes(_eml("Planning", HAM_EN, "maria@example.com"))
    (spam / "mailbox-full.eml").write_bytes(_eml("Mailbox full", LURE_EN))
    near = near_copy_path(model_path(settings))
    near.parent.mkdir(parents=True, exist_ok=True)
    stale = NearCopies()
    stale.add("stale", "spam", sketch(message_tokens(parse(_eml("x", LURE_ZH)))) or nearcopy.array("Q"))
    stale.save(near)
    train_dirs(settings, [ham], [spam])
    assert set(NearCopies.load(near).entries) == {str(spam / "mailbox-full.eml")}


async def test_scanner_holds_a_near_copy_of_recalled_mail(settings: Settings) -> None:
    """One recalled message, no trained model: the next copy of the campaign is quarantined with evidence."""
    from mailmoat.scanner import Scanner

    env = Envelope("notice@payroll-center.example", ["bob@example.com"])
    clf = Classifier.open(model_path(settings))
    clf.learn(parse(_eml("工资补贴通知", "张伟：" + LURE_ZH + " http://pay-gov.example/a1")), "phish", key="msg-42", save=True)
    assert not clf.trained  # a store with one recall: no statistical model yet
    scanner = Scanner(settings)
    copy = _eml("关于发放工资补贴的通知", "李娜：" + LURE_ZH + " http://pay-gov.example/q7")
    verdict = (await scanner.scan(copy, env)).verdict
    hit = [f for f in verdict.findings if f.symbol == "NEAR_COPY_CONDEMNED"]
    assert hit and hit[0].data["like"] == "msg-42" and hit[0].data["label"] == "phish"
    assert "like msg-42, learnt as phishing" in hit[0].evidence
    assert verdict.action in ("quarantine", "reject")
    ham = (await scanner.scan(_eml("Planning", HAM_EN, "maria@example.com"), env)).verdict
    assert "NEAR_COPY_CONDEMNED" not in ham.symbols
    settings.classifier.near_copies = False
    off = (await Scanner(settings).scan(copy, env)).verdict
    assert "NEAR_COPY_CONDEMNED" not in off.symbols


async def test_a_recall_is_remembered_at_once_and_a_full_restore_forgets_it(settings: Settings, tmp_path: Path) -> None:
    from mailmoat.recall.engine import RecallEngine
    from mailmoat.recall.selection import Selector
    from mailmoat.scanner import Scanner
    from mailmoat.store.models import MessageRow
    from tests.support.recallkit import SqliteStore, record

    settings.data_path.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(settings.data_path / "t.db")
    mail_id = "01MSG0000000000000000000NC"
    record(store, settings.mail_dir, mail_id, ["a@corp.example", "b@corp.example"])
    raw = tmp_path / "retained.eml"
    raw.write_bytes(_eml("工资补贴通知", "张伟：" + LURE_ZH + " http://pay-gov.example/a1"))
    with store.session() as s:
        row = s.get(MessageRow, mail_id)
        assert row is not None
        row.raw_path = str(raw)
        s.commit()
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id=mail_id), "analyst")
    assert (await engine.run(job, "analyst"))["counts"] == {"recalled": 2}
    assert remembered_in_store(store) == 1
    assert model_status(settings, store)["near_copies"] == 1
    # The next copy of the campaign is held, before any scheduled learning has run, and by a
    # second node sharing the store (its own data dir: no file of its own).
    env = Envelope("notice@payroll-center.example", ["c@corp.example"])
    copy = _eml("关于发放工资补贴的通知", "李娜：" + LURE_ZH + " http://pay-gov.example/q7")
    other_node = Settings()
    other_node.data_dir = str(tmp_path / "node-b")
    for node in (settings, other_node):
        verdict = (await Scanner(node, store=store).scan(copy, env)).verdict
        hit = [f for f in verdict.findings if f.symbol == "NEAR_COPY_CONDEMNED"]
        assert hit and hit[0].data["like"] == mail_id and verdict.action in ("quarantine", "reject")
    assert not near_copy_path(model_path(settings)).exists()  # the store holds it, not a file
    # A scanner that is already running picks the restore up at its next look (30 s).
    running = Scanner(settings, store=store)
    assert "NEAR_COPY_CONDEMNED" in (await running.scan(copy, env)).verdict.symbols
    await engine.restore(job, "analyst")
    assert remembered_in_store(store) == 0
    for analyzer in running.analyzers:
        if isinstance(analyzer, NearCopyAnalyzer):
            analyzer._checked = 0.0
    assert "NEAR_COPY_CONDEMNED" not in (await running.scan(copy, env)).verdict.symbols
    store.close()


async def test_a_mark_taken_back_forgets_the_look_alikes(settings: Settings, tmp_path: Path) -> None:
    """Condemned, its copies recalled: its near copies are held. `recall uncondemn` says it was no
    threat after all, so they are not, though the copies stay recalled."""
    from mailmoat.recall.auto import condemn_message, uncondemn_message
    from mailmoat.recall.engine import RecallEngine
    from mailmoat.scanner import Scanner
    from mailmoat.store.models import MessageRow
    from tests.support.recallkit import SqliteStore, record

    settings.data_path.mkdir(parents=True, exist_ok=True)
    settings.recall.follow_up_hours = 0
    store = SqliteStore(settings.data_path / "t.db")
    mail_id = "01MSG0000000000000000000UC"
    record(store, settings.mail_dir, mail_id, ["a@corp.example"])
    raw = tmp_path / "retained.eml"
    raw.write_bytes(_eml("工资补贴通知", "张伟：" + LURE_ZH + " http://pay-gov.example/a1"))
    with store.session() as s:
        s.get_one(MessageRow, mail_id).raw_path = str(raw)
        s.commit()
    outcome = await condemn_message(RecallEngine(settings, store), mail_id, "analyst", "reported")
    assert outcome.state == "done" and remembered_in_store(store) == 1
    env = Envelope("notice@payroll-center.example", ["c@corp.example"])
    copy = _eml("关于发放工资补贴的通知", "李娜：" + LURE_ZH + " http://pay-gov.example/q7")
    assert "NEAR_COPY_CONDEMNED" in (await Scanner(settings, store=store).scan(copy, env)).verdict.symbols
    assert uncondemn_message(settings, store, mail_id, "analyst", "the real subsidy notice") == [outcome.job_id]
    assert remembered_in_store(store) == 0
    assert "NEAR_COPY_CONDEMNED" not in (await Scanner(settings, store=store).scan(copy, env)).verdict.symbols
    store.close()


async def test_a_release_forgets_the_look_alikes(settings: Settings) -> None:
    from mailmoat.deliver.service import DeliveryService
    from mailmoat.model import Action, Finding, Verdict
    from mailmoat.store.db import Store

    settings.data_path.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{settings.data_path / 'd.db'}")
    from mailmoat.scanner import Scanner

    lure = _eml("Mailbox full", "Dear alice, " + LURE_EN, "it-desk@corp-mail.example")
    clf = Classifier.open(model_path(settings))
    clf.learn(parse(lure), "phish", key="earlier", save=True)  # trained: the file beside the model
    third = _eml("Mailbox full", "Dear carol, " + LURE_EN, "it-desk@corp-mail.example")
    env3 = Envelope("it-desk@corp-mail.example", ["carol@localhost"])
    assert "NEAR_COPY_CONDEMNED" in (await Scanner(settings, store=store).scan(third, env3)).verdict.symbols
    # A copy of it was quarantined, and an administrator judged it legitimate.
    raw = _eml("Mailbox full", "Dear bob, " + LURE_EN, "it-desk@corp-mail.example")
    env = Envelope("it-desk@corp-mail.example", ["bob@localhost"])
    verdict = Verdict(Action.QUARANTINE, 10.0, [Finding("NEAR_COPY_CONDEMNED", 10.0, "like earlier")])
    store.record_message(env, parse(raw), verdict, store.retain_raw(env, raw, settings.raw_dir))
    svc = DeliveryService(settings, store)
    await svc.deliver(env, raw, verdict, parse(raw))
    assert [o.status for o in await svc.release(env.id)] == ["delivered"]
    # The release, kept in the store, outweighs the trained file on every node.
    assert "NEAR_COPY_CONDEMNED" not in (await Scanner(settings, store=store).scan(third, env3)).verdict.symbols
    assert len(NearCopies.load(near_copy_path(model_path(settings)))) == 1
    store.close()


async def test_after_a_recall_a_rescan_recalls_the_look_alikes_already_delivered(settings: Settings) -> None:
    """Copies delivered before anyone recalled the campaign: `mailmoat rescan` finds them as near copies."""
    from mailmoat.deliver import DeliveryService
    from mailmoat.recall.engine import RecallEngine
    from mailmoat.recall.rescan import rescan
    from mailmoat.recall.selection import Selector
    from mailmoat.scanner import Scanner
    from mailmoat.store.db import Store

    # The recall's own follow-up would find them first (tests/test_recall_siblings.py): off here.
    settings.recall.follow_up_hours = 0
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    ids = {}
    for rcpt, link in (("alice@localhost", "a1"), ("bob@localhost", "b7")):
        raw = _eml("Mailbox full", f"Dear {rcpt.split('@')[0]}, " + LURE_EN + f" https://mail-portal.example/{link}")
        env = Envelope("it-desk@corp-mail.example", [rcpt])
        result = await Scanner(settings, store=store).scan(raw, env)
        assert result.verdict.action.value in ("deliver", "tag")
        store.record_message(env, result.message, result.verdict, store.retain_raw(env, raw, settings.raw_dir))
        await DeliveryService(settings, store).deliver(env, raw, result.verdict, result.message)
        ids[rcpt] = env.id
    engine = RecallEngine(settings, store)
    job = engine.plan(Selector(mail_id=ids["alice@localhost"]), "analyst", "reported by alice")
    assert (await engine.run(job, "analyst"))["counts"] == {"recalled": 1}
    report = await rescan(engine, Scanner(settings, store=store), "1h")
    assert ids["bob@localhost"] in report.newly_condemned
    bob = [p for p in (settings.mail_dir / "bob@localhost").rglob("*") if p.is_file() and p.parent.name in ("cur", "new")]
    assert len(bob) == 1 and bob[0].parent.parent.name.startswith(".MailmoatRecall")
    await engine.close()
    store.close()


@pytest.mark.postgres
async def test_verdicts_are_shared_through_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """Two nodes on one PostgreSQL store: a verdict written by one holds near copies on the other."""
    from mailmoat.scanner import Scanner
    from mailmoat.store.db import Store

    store = Store(pg_url)
    lure = _eml("Mailbox full", "Dear alice, " + LURE_EN, "it-desk@corp-mail.example")
    node_a, node_b = Settings(), Settings()
    node_a.data_dir, node_b.data_dir = str(tmp_path / "a"), str(tmp_path / "b")
    assert remember_verdicts(node_a, store, [("01PGRECALL", lure, "phish")]) == 1
    copy = _eml("Mailbox full", "Dear bob, " + LURE_EN, "it-desk@corp-mail.example")
    env = Envelope("it-desk@corp-mail.example", ["bob@corp.example"])
    verdict = (await Scanner(node_b, store=store).scan(copy, env)).verdict
    assert "NEAR_COPY_CONDEMNED" in verdict.symbols and remembered_in_store(store) == 1
    assert remember_verdicts(node_b, store, [("01PGRELEASE", copy, "ham")]) == 1
    assert "NEAR_COPY_CONDEMNED" not in (await Scanner(node_a, store=store).scan(copy, env)).verdict.symbols
    assert remembered_in_store(store) == 0
    store.close()


def test_a_message_that_cannot_be_read_costs_only_itself(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A recall of several messages: one the parser chokes on is skipped, the others are remembered."""
    import mailmoat.parse
    from mailmoat.store.db import Store

    real = mailmoat.parse.parse

    def choking(raw: bytes, **kw: object) -> object:
        if raw == b"unreadable":
            raise ValueError("parser choked")
        return real(raw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mailmoat.parse, "parse", choking)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{settings.data_path / 'v.db'}")
    lure = _eml("Mailbox full", "Dear alice, " + LURE_EN)
    assert remember_verdicts(settings, store, [("bad", b"unreadable", "phish"), ("good", lure, "phish")]) == 1
    assert remembered_in_store(store) == 1 and "cannot read message bad" in caplog.text
    store.close()
