"""`mailmoat train`: from directories of .eml files, and from administrators' verdicts in the store."""

from __future__ import annotations

import random
import time
from pathlib import Path

from typer.testing import CliRunner

from mailmoat.classify import Classifier
from mailmoat.cli import app
from tests.support.mailgen import synthetic_eml

runner = CliRunner()


def _write_corpus(root: Path, spam: bool, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    for i in range(n):
        sub = root / ("nested" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.eml").write_bytes(synthetic_eml(rng, spam, chinese=i % 2 == 0))
    return root


def test_train_from_directories(tmp_path: Path) -> None:
    ham = _write_corpus(tmp_path / "ham", False, 12, 1)
    spam = _write_corpus(tmp_path / "spam", True, 9, 2)
    (spam / ".hidden").write_bytes(b"not a message")
    data = tmp_path / "var"
    res = runner.invoke(app, ["train", "--ham", str(ham), "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "learnt 12 ham, 9 spam and 0 phishing" in res.output
    model = data / "models" / "bayes.model"
    assert model.exists()
    clf = Classifier.open(model)
    assert (clf.model.nham, clf.model.nspam) == (12, 9)

    # Phishing given apart is learnt as its own kind, in both scripts.
    phish = _write_corpus(tmp_path / "phish", True, 4, 3)
    res = runner.invoke(
        app, ["train", "--ham", str(ham), "--spam", str(spam), "--phish", str(phish), "--data-dir", str(data), "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "learnt 12 ham, 9 spam and 4 phishing" in res.output
    clf = Classifier.open(model)
    assert (clf.model.learnt("spam"), clf.model.learnt("phish"), clf.model.nspam) == (9, 4, 13)

    # Training again replaces the model; --add extends it.
    res = runner.invoke(app, ["train", "--ham", str(ham), "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert Classifier.open(model).model.nham == 12
    res = runner.invoke(app, ["train", "--add", "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert Classifier.open(model).model.nspam == 18


def test_a_language_learnt_only_from_spam_is_warned_about(tmp_path: Path) -> None:
    """German phishing and no German ham: the model would hold every German message, so training
    says so (and still saves the model)."""
    ham = _write_corpus(tmp_path / "ham", False, 12, 1)
    spam = _write_corpus(tmp_path / "spam", True, 9, 2)
    phish = tmp_path / "phish"
    phish.mkdir()
    for i in range(20):
        (phish / f"de{i}.eml").write_text(
            f"From: Gewinnspiel <team{i}@aktion.example>\nSubject: Sie wurden ausgewählt ({i})\n"
            "Content-Type: text/plain; charset=utf-8\n\n"
            "Herzlichen Glückwunsch! Sie wurden ausgewählt und Ihr Gutschein wartet auf Sie. "
            "Wir bitten Sie, die Umfrage mit Ihren Daten auszufüllen, damit Sie den Preis nicht verlieren.\n",
            encoding="utf-8",
        )
    data = tmp_path / "var"
    res = runner.invoke(
        app, ["train", "--ham", str(ham), "--spam", str(spam), "--phish", str(phish), "--data-dir", str(data), "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "German 0 / 20" in res.output
    assert "warning: 20 spam and phishing messages in German and 0 ham" in res.output
    assert (data / "models" / "bayes.model").exists()
    # The model keeps the counts: --status says it again, and --add adds to them.
    res = runner.invoke(app, ["train", "--status", "--data-dir", str(data)])
    assert "German 0 / 20" in res.output and "in German and 0 ham" in res.output
    res = runner.invoke(app, ["train", "--add", "--phish", str(phish), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "German 0 / 40" in res.output


def _dated(root: Path, spam: bool, n: int, year: int, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(n):
        raw = synthetic_eml(rng, spam, chinese=False).replace(b"\r\n", b"\n")
        (root / f"{i}.eml").write_bytes(f"Date: Tue, 12 Mar {year} 10:{i % 60:02d}:00 +0000\n".encode() + raw)
    return root


def test_ham_far_older_than_the_spam_is_warned_about(tmp_path: Path) -> None:
    """List mail of 2002 against phishing of 2024: the model would learn today's words from spam
    alone. Training says so (the dates are read for that only) and still saves the model; ham and
    spam of the same years, or too few dated messages, say nothing."""
    spam = _dated(tmp_path / "spam", True, 20, 2024, 2)
    data = tmp_path / "var"
    old = _dated(tmp_path / "old", False, 20, 2002, 1)
    res = runner.invoke(app, ["train", "--ham", str(old), "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "warning: the ham learnt is from around 2002 and the spam from around 2024" in res.output
    assert (data / "models" / "bayes.model").exists()
    recent = _dated(tmp_path / "recent", False, 20, 2023, 3)
    res = runner.invoke(app, ["train", "--ham", str(recent), "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0 and "the ham learnt is from around" not in res.output, res.output
    # Old spam beside new phishing: the phishing is compared on its own.
    old_spam, phish = _dated(tmp_path / "old_spam", True, 30, 2003, 5), _dated(tmp_path / "phish", True, 20, 2024, 6)
    res = runner.invoke(
        app, ["train", "--ham", str(old), "--spam", str(old_spam), "--phish", str(phish), "--data-dir", str(data), "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "from around 2002 and the phishing from around 2024" in res.output and "the spam from" not in res.output
    few = _dated(tmp_path / "few", False, 19, 2002, 4)
    res = runner.invoke(app, ["train", "--ham", str(few), "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0 and "the ham learnt is from around" not in res.output, res.output


def test_status_before_and_after_training(tmp_path: Path) -> None:
    data = tmp_path / "var"
    res = runner.invoke(app, ["train", "--status", "--data-dir", str(data)])
    assert res.exit_code == 0 and "no trained model yet" in res.output and "every 24 h" in res.output
    ham = _write_corpus(tmp_path / "ham", False, 5, 1)
    spam = _write_corpus(tmp_path / "spam", True, 4, 2)
    assert runner.invoke(app, ["train", "--ham", str(ham), "--spam", str(spam), "--data-dir", str(data), "-j", "1"]).exit_code == 0
    res = runner.invoke(app, ["train", "--status", "--data-dir", str(data)])
    assert res.exit_code == 0 and "learnt 5 ham, 4 spam and 0 phishing" in res.output, res.output
    assert "near copies: " in res.output and "near copies: 0 " not in res.output
    (data / "models" / "bayes.model").write_bytes(b"\0" * 10)
    res = runner.invoke(app, ["train", "--status", "--data-dir", str(data)])
    assert res.exit_code == 0 and "cannot be read" in res.output


def test_train_needs_both_classes_and_existing_dirs(tmp_path: Path) -> None:
    ham = _write_corpus(tmp_path / "ham", False, 3, 1)
    data = tmp_path / "var"
    res = runner.invoke(app, ["train", "--ham", str(ham), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 2
    assert "needs both ham and spam or phishing" in res.output
    assert not (data / "models" / "bayes.model").exists()
    res = runner.invoke(app, ["train", "--ham", str(tmp_path / "nope"), "--spam", str(ham), "--data-dir", str(data)])
    assert res.exit_code == 2 and "no such file or directory" in res.output
    res = runner.invoke(app, ["train", "--data-dir", str(data)])
    assert res.exit_code == 2 and "--from-store" in res.output


def test_train_from_store_without_store(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--from-store", "--data-dir", str(tmp_path / "var")])
    assert res.exit_code == 2
    assert "no store" in res.output


def test_train_from_store_learns_released_and_recalled(tmp_path: Path) -> None:
    from mailmoat.store.db import Store
    from mailmoat.store.models import MessageRow
    from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

    data = tmp_path / "var"
    ham = _write_corpus(tmp_path / "ham", False, 10, 1)
    spam = _write_corpus(tmp_path / "spam", True, 10, 2)
    res = runner.invoke(app, ["train", "--ham", str(ham), "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 0, res.output

    rng = random.Random(5)
    raw_dir = data / "raw"
    raw_dir.mkdir(parents=True)
    store = Store(f"sqlite:///{data / 'mailmoat.db'}")
    now = time.time()
    with store.session() as s:
        for mid, status, spammy in [("m-released", "released", False), ("m-recalled", "processed", True), ("m-plain", "processed", False)]:
            path = raw_dir / f"{mid}.eml"
            path.write_bytes(synthetic_eml(rng, spammy, chinese=False))
            s.add(MessageRow(id=mid, received_at=now, direction="inbound", action="deliver", raw_path=str(path), status=status))
        s.add(RecallJobRow(id="job-1", created_at=now, state="done"))
        s.add(RecallCopyRow(job_id="job-1", message_id="m-recalled", tracking_id="m-recalled-0000", recipient="u@example.com", mailbox="u@example.com", state="recalled"))
    store.close()

    res = runner.invoke(app, ["train", "--from-store", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    assert "learnt 1 released as ham, 1 recalled as phishing" in res.output
    clf = Classifier.open(data / "models" / "bayes.model")
    assert (clf.model.nham, clf.model.nspam) == (11, 11)
    assert clf.learned_as("m-released") == "ham" and clf.learned_as("m-recalled") == "phish"
    # Running it again learns nothing twice.
    res = runner.invoke(app, ["train", "--from-store", "--data-dir", str(data)])
    assert "learnt 0 released as ham, 0 recalled as phishing (2 already learnt" in res.output
    assert Classifier.open(data / "models" / "bayes.model").model.nham == 11


def test_damaged_model_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "var"
    (data / "models").mkdir(parents=True)
    (data / "models" / "bayes.model").write_text("{broken")
    spam = _write_corpus(tmp_path / "spam", True, 3, 2)
    res = runner.invoke(app, ["train", "--add", "--spam", str(spam), "--data-dir", str(data), "-j", "1"])
    assert res.exit_code == 2
    assert "bayes.model" in res.output


def _trained_beside_a_store(tmp_path: Path, seed: int) -> tuple[Path, Path, random.Random]:
    """A data dir with a model trained from directories and an empty raw directory for the store's
    messages; and a random source for them."""
    data = tmp_path / "var"
    ham = _write_corpus(tmp_path / "ham", False, 10, 1)
    spam = _write_corpus(tmp_path / "spam", True, 10, 2)
    assert runner.invoke(app, ["train", "--ham", str(ham), "--spam", str(spam), "--data-dir", str(data), "-j", "1"]).exit_code == 0
    raw_dir = data / "raw"
    raw_dir.mkdir(parents=True)
    return data, raw_dir, random.Random(seed)


def _recalled(data: Path, mid: str) -> None:
    """A finished recall job that took the message back."""
    from mailmoat.store.db import Store
    from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

    store = Store(f"sqlite:///{data / 'mailmoat.db'}")
    with store.session() as s:
        s.add(RecallJobRow(id=f"job-{mid}", created_at=time.time(), state="done"))
        s.add(RecallCopyRow(job_id=f"job-{mid}", message_id=mid, tracking_id=f"{mid}-0000", recipient="u@example.com",
                            mailbox="u@example.com", state="recalled"))
    store.close()


def test_train_from_store_learns_old_untouched_deliveries_as_ham(tmp_path: Path) -> None:
    from mailmoat.store.db import Store
    from mailmoat.store.models import MessageRow

    data, raw_dir, rng = _trained_beside_a_store(tmp_path, 6)
    store = Store(f"sqlite:///{data / 'mailmoat.db'}")
    now, day = time.time(), 86400.0
    rows = [  # (id, received, action, score, status)
        ("m-old", now - 5 * day, "deliver", 0.5, "processed"),  # the only one learnt
        ("m-new", now - 0.5 * day, "deliver", 0.0, "processed"),  # too recent: a recall may still come
        ("m-tagged", now - 5 * day, "tag", 6.0, "processed"),
        ("m-doubtful", now - 5 * day, "deliver", 3.5, "processed"),
        ("m-condemned", now - 5 * day, "deliver", 0.0, "condemned"),
        ("m-bounce", now - 5 * day, "deliver", 0.0, "processed"),  # a null sender: a bounce, or the gateway's digest
    ]
    with store.session() as s:
        for mid, at, action, score, status in rows:
            path = raw_dir / f"{mid}.eml"
            path.write_bytes(synthetic_eml(rng, False, chinese=False))
            s.add(MessageRow(id=mid, received_at=at, direction="inbound", action=action, score=score, raw_path=str(path), status=status,
                             mail_from="" if mid == "m-bounce" else "news@example.org"))
    store.close()

    res = runner.invoke(app, ["train", "--from-store", "--delivered-as-ham", "3d", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    assert "learnt 0 released as ham, 0 recalled as phishing, 1 delivered as ham" in res.output
    clf = Classifier.open(data / "models" / "bayes.model")
    assert clf.model.nham == 11 and clf.learned_as("m-old") == "ham" and clf.learned_as("m-new") is None
    _recalled(data, "m-old")  # after all: the next run moves it to phishing
    res = runner.invoke(app, ["train", "--from-store", "--delivered-as-ham", "3d", "--data-dir", str(data)])
    assert "1 recalled as phishing, 0 delivered as ham" in res.output, res.output
    clf = Classifier.open(data / "models" / "bayes.model")
    assert clf.model.nham == 10 and clf.learned_as("m-old") == "phish"
    res = runner.invoke(app, ["train", "--delivered-as-ham", "3d", "--data-dir", str(data)])
    assert res.exit_code == 2 and "goes with --from-store" in res.output


def test_train_from_store_learns_what_the_sites_accounts_sent_out_as_ham(tmp_path: Path) -> None:
    """Outgoing mail is the site's own ham; a stolen account's mail is not, nor mail that is too new,
    scored or internal."""
    from mailmoat.store.accounts_models import IncidentRow
    from mailmoat.store.db import Store
    from mailmoat.store.models import MessageRow

    data, raw_dir, rng = _trained_beside_a_store(tmp_path, 7)
    store = Store(f"sqlite:///{data / 'mailmoat.db'}")
    now, day = time.time(), 86400.0
    rows = [  # (id, received, direction, score, login, envelope sender)
        ("o-sent", now - 5 * day, "outbound", 0.0, "li.na@corp.test", "li.na@corp.test"),  # the only one learnt
        ("o-recent", now - 1 * day, "outbound", 0.0, "li.na@corp.test", "li.na@corp.test"),  # containment may still act
        ("o-scored", now - 5 * day, "outbound", 2.5, "li.na@corp.test", "li.na@corp.test"),
        ("o-stolen", now - 30 * day, "outbound", 0.0, "", "Wang.Fang@corp.test"),  # its account had an incident since
        ("o-internal", now - 5 * day, "internal", 0.0, "li.na@corp.test", "li.na@corp.test"),
        ("o-inbound", now - 5 * day, "inbound", 0.0, "", "someone@example.net"),
    ]
    with store.session() as s:
        for mid, at, direction, score, login, sender in rows:
            path = raw_dir / f"{mid}.eml"
            path.write_bytes(synthetic_eml(rng, False, chinese=False))
            s.add(MessageRow(id=mid, received_at=at, direction=direction, action="deliver", score=score, auth_user=login,
                             mail_from=sender, from_addr=sender, raw_path=str(path), status="processed"))
        s.add(IncidentRow(id="INC-1", account="wang.fang@corp.test", state="released", opened_at=now - day, reasons=["burst"]))
    store.close()

    res = runner.invoke(app, ["train", "--from-store", "--outbound-as-ham", "3d", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    assert "learnt 0 released as ham, 0 recalled as phishing, 1 sent out as ham" in res.output
    clf = Classifier.open(data / "models" / "bayes.model")
    assert clf.model.nham == 11 and clf.learned_as("o-sent") == "ham"
    assert all(clf.learned_as(mid) is None for mid, *_ in rows[1:])
    _recalled(data, "o-sent")  # after all: the next run moves it to phishing
    res = runner.invoke(app, ["train", "--from-store", "--outbound-as-ham", "3d", "--data-dir", str(data)])
    assert "1 recalled as phishing, 0 sent out as ham" in res.output, res.output
    assert Classifier.open(data / "models" / "bayes.model").learned_as("o-sent") == "phish"
    # Untouched deliveries of every direction, when asked for, still leave the stolen account out.
    res = runner.invoke(app, ["train", "--from-store", "--delivered-as-ham", "3d", "--outbound-as-ham", "3d", "--data-dir", str(data)])
    assert "2 delivered as ham, 0 sent out as ham" in res.output, res.output
    clf = Classifier.open(data / "models" / "bayes.model")
    assert clf.learned_as("o-internal") == clf.learned_as("o-inbound") == "ham" and clf.learned_as("o-stolen") is None
    res = runner.invoke(app, ["train", "--outbound-as-ham", "3d", "--data-dir", str(data)])
    assert res.exit_code == 2 and "--outbound-as-ham goes with --from-store" in res.output
