"""The statistical classifier: tokens, training, persistence, incremental learning, era-blindness."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.classifier import (
    BAYES_SPAM,
    SPAM_FROM,
    SPAM_FULL,
    ClassifierAnalyzer,
    no_model_note,
    scale,
)
from mailmoat.classify import BayesModel, Classifier, ModelError, message_tokens, model_path
from mailmoat.classify.tokens import text_tokens
from mailmoat.config import Settings
from mailmoat.model import Address, Envelope, Message, Part, Url
from tests.support.mailgen import synthetic_eml, synthetic_message


def _trained(path: Path, n: int = 40, seed: int = 1) -> Classifier:
    rng = random.Random(seed)
    clf = Classifier(path)
    for _ in range(n):
        for chinese in (False, True):
            clf.learn(synthetic_message(rng, spam=True, chinese=chinese), True, save=False)
            clf.learn(synthetic_message(rng, spam=False, chinese=chinese), False, save=False)
    clf.save()
    return clf


def test_tokens_words_bigrams_and_chinese() -> None:
    toks = text_tokens("Please VERIFY your account!! 关于工资补贴 in 2002 at 10:30, v2.3.1")
    assert {"verify", "your account", "caps:verify", "shape:!!"} <= toks
    assert {"工资", "资补", "补贴", "关于"} <= toks
    # Bare numbers (years, times, versions) say when a mail was written, not what it is.
    assert not any(any(ch.isdigit() for ch in t) for t in toks)


def test_tokens_word_runs_of_three() -> None:
    toks = text_tokens("To be removed from our list, reply. Your account will be closed")
    # A run of three is kept when one of its words is not a stop word, even if its pairs are not.
    assert {"to be removed", "be removed from", "your account will", "account will be"} <= toks
    assert "to be" not in toks and "will be" not in toks
    # Runs cross punctuation and bare numbers (never tokens) like pairs do; a skipped word ends them.
    assert "list reply your" in toks
    assert "verify your account" in text_tokens("verify 2024 your account")
    assert not any(t.count(" ") == 2 for t in text_tokens("verify " + "q" * 40 + " your account"))
    assert not any(t.count(" ") == 2 for t in text_tokens("verify your account", bigrams=False))


def test_tokens_chinese_four_grams_cross_scripts_without_numbers() -> None:
    toks = text_tokens("扫码领取补贴，每月2006元，加qq群")
    # Phrases longer than a trigram, and CJK next to digits and Latin letters ("#" stands for
    # any run of digits, so "2006元" and "5元" are one token and no year is learnt).
    assert {"g:扫码领取", "g:每月#元", "g:加qq群"} <= toks
    assert not any(any(ch.isdigit() for ch in t) for t in toks)
    # Text without CJK characters gets no character n-grams at all.
    assert not any(t.startswith("g:") for t in text_tokens("Please verify your account 2006"))


def test_tokens_read_content_not_era_headers() -> None:
    msg = Message(
        subject="Invoice",
        text="see link",
        headers=[("Received", "from old-relay.example by mx; Mon, 2 Sep 2002"), ("X-Mailer", "Outlook Express 6")],
        received=[],
        x_mailer="Outlook Express 6",
        message_id="<123@old-relay.example>",
        date="Mon, 2 Sep 2002 10:00:00 +0000",
        from_=Address("Payroll Team", "pay@example.org"),
        urls=[Url(url="https://bad.example.top/x", host="bad.example.top", registrable_domain="example.top")],
        parts=[Part(path="2", content_type="application/octet-stream", filename="a.zip", true_type="application/zip", is_attachment=True)],
    )
    toks = message_tokens(msg)
    assert {"s:invoice", "see", "url:example.top", "att:application/zip", "attext:zip", "fn:payroll"} <= toks
    assert not any("outlook" in t or "relay" in t or t == "sep" for t in toks)


def test_tokens_read_the_words_a_link_is_written_with() -> None:
    """The subdomain's and the path's words, without ids, dates or hashes; the domain as before."""
    msg = Message(urls=[
        Url(url="https://secure-login.account.example.top/wp-includes/verify.php?id=8f3a9c2e&u=2024", host="secure-login.account.example.top",
            registrable_domain="example.top"),
        Url(url="http://192.0.2.7/remove.html", host="192.0.2.7", is_ip=True),
    ])
    toks = message_tokens(msg)
    assert {"url:example.top", "uh:secure", "uh:login", "uh:account", "up:includes", "up:verify", "up:php", "up:remove", "meta:ip-url"} <= toks
    assert not {t for t in toks if t.startswith(("uh:", "up:")) and any(c.isdigit() for c in t)}
    assert "uh:example" not in toks and "up:8f3a9c2e" not in toks


def test_train_classify_english_and_chinese(tmp_path: Path) -> None:
    clf = _trained(tmp_path / "bayes.model")
    rng = random.Random(99)
    for chinese in (False, True):
        spam = clf.classify(synthetic_message(rng, spam=True, chinese=chinese))
        ham = clf.classify(synthetic_message(rng, spam=False, chinese=chinese))
        assert spam.prob > 0.99, (chinese, spam.prob)
        assert ham.prob < 0.01, (chinese, ham.prob)
        assert spam.top(3, spammy=True)


def test_unknown_content_is_unsure(tmp_path: Path) -> None:
    clf = _trained(tmp_path / "bayes.model")
    assert clf.classify(Message(subject="zyxw", text="qwerty asdfgh")).prob == 0.5


def test_persist_and_load(tmp_path: Path) -> None:
    path = tmp_path / "models" / "bayes.model"
    clf = _trained(path)
    msg = synthetic_message(random.Random(5), spam=True, chinese=False)
    again = Classifier.open(path)
    assert again.model.nspam == clf.model.nspam and again.model.nham == clf.model.nham
    assert again.classify(msg).prob == pytest.approx(clf.classify(msg).prob)
    assert json.loads(path.read_bytes().split(b"\n", 1)[0])["format"] == "mailmoat-bayes/3"
    # A damaged file is a clear error, not a crash deep in scoring (damaged compact files:
    # tests/test_bayes_format.py).
    path.write_text("{not json")
    with pytest.raises(ModelError):
        Classifier.open(path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelError):
        BayesModel.load(path)
    good = {"format": "mailmoat-bayes/2", "labels": ["ham", "spam", "phish"], "scripts": ["latin", "cjk"],
            "n": [2, 0, 1, 0, 0, 0], "tokens": {"prize": [0, 0, 1, 0, 0, 0], "meeting": [2, 0, 0, 0, 0, 0]}}
    path.write_text(json.dumps(good))
    assert BayesModel.load(path).nspam == 1
    for damage in (
        {"tokens": {"prize": [1, 2]}},  # a row of the wrong length
        {"tokens": {"prize": [1, 0, 0, 0, "x", 0]}},  # a count that is not a number
        {"labels": ["ham", "spam"]},  # cells this version does not know
        {"n": [1, 2, 3]},
        {"tokens": {"prize": [1, 0, 0, 0, -1, 0]}},  # a count below zero
    ):
        path.write_text(json.dumps({**good, **damage}))
        with pytest.raises(ModelError):
            BayesModel.load(path)


def test_learn_incrementally_from_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "bayes.model"
    clf = _trained(path, n=20)
    lure = Message(subject="quarterly bonus statement", text="open the statement portal bonus statement quarterly")
    before = clf.classify(lure).prob
    for i in range(8):
        assert clf.learn(lure, True, key=f"msg-{i}")  # recalled by an administrator
    assert clf.classify(lure).prob > before
    assert clf.classify(lure).prob > 0.9
    # The same verdict again is a no-op; a reversed verdict moves the message, not doubles it.
    nspam = clf.model.nspam
    assert not clf.learn(lure, True, key="msg-0")
    assert clf.model.nspam == nspam
    assert clf.learn(lure, False, key="msg-0")  # released after all
    assert clf.model.nspam == nspam - 1
    # Learning is saved: a new process sees it, including what each key was learnt as.
    again = Classifier.open(path)
    assert again.model.nspam == nspam - 1
    assert again.learned_as("msg-0") == "ham"


def test_score_scaling() -> None:
    assert scale(0.9, 0.9, 0.999) == pytest.approx(0.0)
    assert scale(0.99, 0.9, 0.999) == pytest.approx(0.5, abs=0.01)
    assert scale(0.999, 0.9, 0.999) == pytest.approx(1.0)
    assert scale(1.0, 0.9, 0.999) == 1.0
    assert scale(0.3, 0.5, 0.95) == 0.0
    assert scale(0.001, 0.1, 0.001) == pytest.approx(1.0)
    # The default mapping: a merely likely message gets part of the score, never quarantine alone.
    assert 0 < scale(0.65, SPAM_FROM, SPAM_FULL) * BAYES_SPAM.score < 10 - 3
    assert scale(0.5, SPAM_FROM, SPAM_FULL) == 0.0
    assert scale(SPAM_FULL, SPAM_FROM, SPAM_FULL) * BAYES_SPAM.score == pytest.approx(10.0)


async def test_analyzer_with_and_without_model(settings: Settings) -> None:
    env = AnalyzerEnv(settings=settings)
    note = no_model_note(settings)
    assert note and "mailmoat train" in note
    analyzer = ClassifierAnalyzer(env)
    rng = random.Random(3)
    spam_msg = synthetic_message(rng, spam=True, chinese=True)
    ctx = AnalysisContext(message=spam_msg, envelope=Envelope("a@example.org", ["b@example.com"]), settings=settings)
    assert await analyzer.analyze(ctx) == []

    _trained(model_path(settings))
    assert no_model_note(settings) is None
    analyzer = ClassifierAnalyzer(env)
    (finding,) = await analyzer.analyze(ctx)
    assert finding.symbol == "BAYES_SPAM"
    assert 0 < finding.score <= 10.0
    assert "spam probability" in finding.evidence
    ctx.message = synthetic_message(rng, spam=False, chinese=False)
    (finding,) = await analyzer.analyze(ctx)
    assert finding.symbol == "BAYES_HAM" and finding.score < 0


def test_a_damaged_model_is_reported_once_until_the_file_changes(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    import os

    path = model_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a model at all")
    with caplog.at_level(logging.ERROR, logger="mailmoat"):
        analyzer = ClassifierAnalyzer(AnalyzerEnv(settings=settings))
        analyzer._checked = 0.0
        analyzer._maybe_reload()  # the next check: the same file, not read or reported again
    assert analyzer.classifier is None
    assert sum("not loaded" in r.getMessage() for r in caplog.records) == 1
    # A retrained file is read at the next check.
    _trained(path)
    os.utime(path, (1e9, 1e9))  # a different time whatever the clock's resolution
    analyzer._checked = 0.0
    analyzer._maybe_reload()
    assert analyzer.classifier is not None and analyzer.classifier.trained


def test_model_setting_overrides_location(settings: Settings, tmp_path: Path) -> None:
    assert model_path(settings) == Path(settings.data_dir) / "models" / "bayes.model"
    settings.classifier.model = str(tmp_path / "elsewhere.json")
    assert model_path(settings) == tmp_path / "elsewhere.json"


def _rewrite_dates(raw: bytes, when: datetime) -> bytes:
    """Every Date and Received timestamp set to one recent date (and a current mailer)."""
    head, _, body = raw.partition(b"\n\n")
    lines = []
    for line in head.split(b"\n"):
        if line.lower().startswith(b"date:"):
            line = b"Date: " + format_datetime(when).encode()
        elif line.lower().startswith(b"received:"):
            line = line.rpartition(b";")[0] + b"; " + format_datetime(when).encode()
        lines.append(line)
    return b"\n".join(lines) + b"\n\n" + body


def test_rewriting_dates_does_not_change_the_verdict(tmp_path: Path) -> None:
    from mailmoat.parse import parse

    rng = random.Random(7)
    old = datetime(2002, 9, 1, 12, 0, tzinfo=UTC)
    new = datetime(2025, 11, 18, 9, 30, tzinfo=UTC)
    # Train on old ham and new spam: a model that read dates would learn "old = ham".
    clf = Classifier(tmp_path / "bayes.model")
    for _ in range(30):
        for chinese in (False, True):
            clf.learn(parse(synthetic_eml(rng, False, chinese, when=old)), False, save=False)
            clf.learn(parse(synthetic_eml(rng, True, chinese, when=new, mailer="Outlook 16.0")), True, save=False)
    for _ in range(10):
        for spam in (False, True):
            for chinese in (False, True):
                raw = synthetic_eml(rng, spam, chinese, when=old)
                a = clf.classify(parse(raw)).prob
                b = clf.classify(parse(_rewrite_dates(raw, new))).prob
                assert message_tokens(parse(raw)) == message_tokens(parse(_rewrite_dates(raw, new)))
                assert abs(a - b) < 0.01
                assert (a > 0.5) == spam


async def test_scanner_verdict_ignores_rewritten_dates(settings: Settings) -> None:
    """The whole Scanner, with a trained model: same action and classifier score after the rewrite."""
    from mailmoat.scanner import Scanner

    rng = random.Random(11)
    old = datetime(2003, 3, 1, 8, 0, tzinfo=UTC)
    new = datetime(2025, 11, 18, 9, 30, tzinfo=UTC)
    _trained(model_path(settings))
    scanner = Scanner(settings)
    for spam in (False, True):
        for chinese in (False, True):
            raw = synthetic_eml(rng, spam, chinese, when=old)
            a = (await scanner.scan(raw, Envelope("sender@example.org", ["user@example.com"]))).verdict
            b = (await scanner.scan(_rewrite_dates(raw, new), Envelope("sender@example.org", ["user@example.com"]))).verdict
            assert a.action == b.action
            assert a.symbols.get("BAYES_SPAM") == b.symbols.get("BAYES_SPAM")
            assert a.symbols.get("BAYES_HAM") == b.symbols.get("BAYES_HAM")
            assert ("BAYES_SPAM" in a.symbols) == spam


def test_learn_verdict_helper(settings: Settings) -> None:
    from mailmoat.classify import learn_verdict

    raw = synthetic_eml(random.Random(2), spam=True, chinese=True)
    assert not learn_verdict(settings, raw, True, key="m1")  # no model yet: nothing to extend
    _trained(model_path(settings), n=5)
    assert learn_verdict(settings, raw, True, key="m1")
    assert not learn_verdict(settings, raw, True, key="m1")
    assert Classifier.open(model_path(settings)).learned_as("m1") == "spam"


def test_mail_domains_in_text_and_long_runs() -> None:
    from mailmoat.classify.tokens import text_tokens

    toks = text_tokens("write to john.doe+x@mail.example.co.uk or (a@b.cn); not @handle or x@localhost")
    assert {t for t in toks if t.startswith("email:")} == {"email:example.co.uk", "email:b.cn"}
    # A local part longer than 64 characters is no address; a long run of letters is one skipped word
    # (bench/hostile_text.py shows it costs about what an ordinary message costs).
    assert not any(t.startswith("email:") for t in text_tokens("a" * 65 + "@example.com"))
    assert text_tokens("a" * 60_000) == {"skip:a60000"}


def _words(rng: random.Random, vocab: list[str], k: int) -> list[str]:
    return rng.sample(vocab, k)


_SHARED = [f"common{i}" for i in range(40)]  # everyday words: in ham and in the bulk spam alike
_BULK = [f"offer{i}" for i in range(10)]  # in most bulk spam and in some ham
_LURE = [f"verify{i}" for i in range(30)]
_WORK = [f"agenda{i}" for i in range(20)]


def _kinds_model(rng: random.Random) -> BayesModel:
    """Ham, some bulk spam, and three times as much phishing, each just above a view's minimum."""
    from mailmoat.classify import bayes

    model = BayesModel()
    for _ in range(bayes.MIN_VIEW + 20):
        model.learn_tokens(_words(rng, _SHARED, 15) + _words(rng, _BULK, 1) + _words(rng, _WORK, 4), "ham")
        model.learn_tokens(_words(rng, _SHARED, 15) + _words(rng, _BULK, 6), "spam")
    for _ in range(3 * (bayes.MIN_VIEW + 20)):
        model.learn_tokens(_words(rng, _LURE, 10), "phish")
    return model


def test_a_minority_kind_is_read_by_its_own_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bulk-spam words diluted by three times as much phishing look neutral pooled; its own view sees them."""
    from mailmoat.classify import bayes

    rng = random.Random(7)
    model = _kinds_model(rng)
    assert model.learnt("spam") == bayes.MIN_VIEW + 20 and model.learnt("phish") == 3 * (bayes.MIN_VIEW + 20)

    offer = _words(rng, _SHARED, 5) + _words(rng, _BULK, 6)
    got = model.classify_tokens(offer)
    with monkeypatch.context() as mp:
        mp.setattr(bayes, "MIN_VIEW", 10**9)  # the pooled view alone, as before kinds were kept apart
        pooled = model.classify_tokens(offer)
    assert pooled.view == "all" and pooled.prob < 0.6
    # Its own view is sure (0.99); the result moves halfway there in log-odds.
    assert got.view == "spam/latin" and got.prob > 0.85
    # A phishing lure is read as phishing, and ordinary mail stays ham in every view.
    assert model.classify_tokens(_words(rng, _LURE, 10)).prob > 0.99
    assert model.classify_tokens(_words(rng, _SHARED, 15) + _words(rng, _WORK, 4)).prob < 0.1


async def test_the_evidence_names_the_view_that_moved_the_probability(settings: Settings) -> None:
    rng = random.Random(9)
    model = _kinds_model(rng)
    Classifier(model_path(settings), model).save()
    analyzer = ClassifierAnalyzer(AnalyzerEnv(settings=settings))
    offer = Message(subject="", text=" ".join(_words(rng, _SHARED, 5) + _words(rng, _BULK, 6)))
    ctx = AnalysisContext(message=offer, envelope=Envelope("a@example.org", ["b@example.com"]), settings=settings)
    (finding,) = await analyzer.analyze(ctx)
    assert finding.symbol == "BAYES_SPAM" and finding.data["view"] == "spam/latin"
    assert "as bulk spam, Latin script" in finding.evidence and "offer" in finding.evidence


def test_a_view_needs_enough_mail_of_its_kind_and_script() -> None:
    from mailmoat.classify import bayes

    rng = random.Random(8)
    model = BayesModel()
    for _ in range(bayes.MIN_VIEW):
        model.learn_tokens([f"w{rng.randrange(50)}" for _ in range(10)], "ham")
        model.learn_tokens([f"w{rng.randrange(40, 90)}" for _ in range(10)], "spam")
    for _ in range(bayes.MIN_VIEW - 1):
        model.learn_tokens([f"p{rng.randrange(50)}" for _ in range(10)], "phish")
    assert [v[0] for v in model._views("latin")] == ["all", "spam/latin"]
    # No Chinese mail learnt: a Chinese message is read by the pooled view alone.
    assert [v[0] for v in model._views("cjk")] == ["all"]
    model.learn_tokens([f"p{rng.randrange(50)}" for _ in range(10)], "phish")
    assert [v[0] for v in model._views("latin")] == ["all", "spam/latin", "phish/latin"]


def test_traditional_chinese_reads_as_simplified() -> None:
    """One vocabulary for both scripts: a model trained mostly on Simplified mail reads 工資補貼 too."""
    assert text_tokens("請掃碼領取工資補貼") == text_tokens("请扫码领取工资补贴")
    from mailmoat.parse.hanzi import simplified

    assert simplified("显著 著名 头发 我们的发票") == "显著 著名 头发 我们的发票"  # Simplified stays as it is
    assert simplified("頭髮 東京の図書館") == "头发 东京の図书馆" and simplified("Hello 2006") == "Hello 2006"


def test_script_of_messages() -> None:
    from mailmoat.classify.tokens import script_of

    assert script_of(text_tokens("关于发放2025年度工资补贴的通知，请扫码领取")) == "cjk"
    assert script_of(text_tokens("Please find the quarterly report attached, with the figures")) == "latin"
    # A Chinese display name on English text does not make the message Chinese.
    toks = text_tokens("Please find the quarterly report attached, with the figures for the board") | {"fn:王伟"}
    assert script_of(toks) == "latin"
    assert script_of(set()) == "latin"


def test_reads_a_version_one_model_as_before(tmp_path: Path) -> None:
    v1 = {"format": "mailmoat-bayes/1", "nspam": 3, "nham": 2,
          "tokens": {"prize": [3, 0], "meeting": [0, 2], "today": [1, 1]}}
    path = tmp_path / "bayes.model"
    path.write_text(json.dumps(v1))
    model = BayesModel.load(path)
    assert (model.nspam, model.nham) == (3, 2)
    (prize,) = model.classify_tokens(["prize"]).clues
    assert prize.prob == pytest.approx((0.45 * 0.5 + 3 * 1.0) / 3.45)
    got = model.classify_tokens(["prize", "today"])
    assert got.view == "all" and got.prob > 0.5
    # Saved again, it is a compact (version three) model with the same counts.
    model.save(path)
    assert path.read_bytes().startswith(b'{"format":"mailmoat-bayes/3"')
    assert BayesModel.load(path).classify_tokens(["prize"]).clues == [prize]
    # Unknown labels are refused, not guessed.
    with pytest.raises(ValueError):
        model.learn_tokens(["x"], "newsletter")


def test_a_verdict_can_move_a_message_between_kinds(tmp_path: Path) -> None:
    clf = _trained(tmp_path / "bayes.model", n=5)
    msg = Message(subject="parcel", text="your parcel is waiting pay the customs fee")
    before = (clf.model.learnt("spam"), clf.model.learnt("phish"))
    assert clf.learn(msg, "spam", key="k")
    assert clf.learn(msg, "phish", key="k")
    assert (clf.model.learnt("spam"), clf.model.learnt("phish")) == (before[0], before[1] + 1)
    assert Classifier.open(tmp_path / "bayes.model").learned_as("k") == "phish"
