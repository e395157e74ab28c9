"""The rough language of a message, and the warning for a language learnt only from spam."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailmoat.classify.language import count, coverage, language_of, language_of_text, spam_only, uncount
from mailmoat.config import Settings
from mailmoat.model import Direction, Message

TEXTS = {
    "en": "Thank you for your order. We will send the invoice with the next delivery and you can pay it online.",
    "de": "Vielen Dank für Ihre Bestellung. Wir senden Ihnen die Rechnung mit der nächsten Lieferung, die Sie nicht vorab zahlen.",
    "fr": "Merci pour votre commande. Nous vous enverrons la facture avec la prochaine livraison, vous pouvez la payer sur le site.",
    "nl": "Bedankt voor uw bestelling. Wij sturen u de factuur met de volgende levering, het bedrag is niet direct verschuldigd.",
    "pt": "Obrigado pelo seu pedido. Você recebe a nota fiscal com a próxima entrega e não precisa pagar uma taxa pelo envio.",
    "es": "Gracias por su pedido. Usted recibirá la factura con la próxima entrega y los gastos del envío están incluidos por ahora.",
    "zh": "感谢您的订购。我们将在下一次发货时寄出发票，您可以在网上支付，如有问题请联系财务部。",
    "ja": "ご注文ありがとうございます。次回の発送時に請求書をお送りしますので、オンラインでお支払いください。",
    "ko": "주문해 주셔서 감사합니다. 다음 배송 때 청구서를 보내드리며 온라인으로 결제하실 수 있습니다.",
}


@pytest.mark.parametrize(("lang", "text"), sorted(TEXTS.items()))
def test_each_language_is_told(lang: str, text: str) -> None:
    assert language_of_text(text) == lang


def test_too_short_or_too_mixed_is_unknown() -> None:
    assert language_of_text("Invoice attached") == ""
    assert language_of_text("12345 67890 https://example.com/a/b/c?d=e") == ""
    assert language_of(Message(subject="Rechnung", text=TEXTS["de"])) == "de"


def test_a_language_learnt_only_from_spam_is_named() -> None:
    languages: dict[str, list[int]] = {}
    for lang, label, n in (("en", "ham", 900), ("en", "spam", 700), ("de", "phish", 230), ("de", "ham", 2), ("fr", "spam", 8), ("", "ham", 40)):
        for _ in range(n):
            count(languages, lang, label)
    assert languages == {"en": [900, 700], "de": [2, 230], "fr": [0, 8]}  # unknown language not counted
    summary, warnings = coverage(languages)
    assert summary == "languages learnt (ham / spam and phishing): English 900 / 700, German 2 / 230, French 0 / 8"
    # French has too few messages to judge; German has ham under 5% of its spam.
    assert spam_only(languages) == ["de"]
    assert len(warnings) == 1 and "230 spam and phishing messages in German and 2 ham" in warnings[0]
    assert coverage({"de": [30, 230]})[1] == []


def test_verdicts_learnt_one_at_a_time_are_counted_and_moved(tmp_path: Path) -> None:
    """Releases and recalls count in the model's languages like directory training does; a
    verdict reversed moves its message from one column to the other, and the counts are saved."""
    from mailmoat.classify import Classifier

    path = tmp_path / "bayes.model"
    clf = Classifier(path)
    rechnung = Message(subject="Rechnung", text=TEXTS["de"])
    for i in range(3):
        assert clf.learn(rechnung, "phish", key=f"de-{i}", save=False)
    clf.learn(Message(subject="Order", text=TEXTS["en"]), "ham", key="en-0", save=False)
    clf.learn(Message(subject="x", text="too short"), "ham", key="unknown-0", save=False)
    assert clf.model.languages == {"de": [0, 3], "en": [1, 0]}
    assert clf.learn(rechnung, "ham", key="de-0")  # released after all
    assert clf.model.languages == {"de": [1, 2], "en": [1, 0]}
    assert not clf.learn(rechnung, "ham", key="de-0")  # the same verdict again changes nothing
    assert Classifier.open(path).model.languages == {"de": [1, 2], "en": [1, 0]}
    counts = {"de": [0, 1]}
    uncount(counts, "de", "ham")  # never below zero
    uncount(counts, "fr", "spam")
    assert counts == {"de": [0, 1]}


async def _not_read_here(settings: Settings, msg: Message, direction: Direction | None = None) -> list[str]:
    from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
    from mailmoat.analyzers.language import LanguageAnalyzer
    from mailmoat.model import Envelope

    analyzer = LanguageAnalyzer(AnalyzerEnv(settings=settings))
    env = Envelope("a@example.com", ["b@example.org"], direction=direction or Direction.INBOUND)
    return [f.evidence for f in await analyzer.analyze(AnalysisContext(message=msg, envelope=env, settings=settings))]


async def test_mail_in_a_language_nobody_here_reads(settings: Settings) -> None:
    """Off by default; with the site's languages listed, inbound mail in another one is marked,
    and mail too short to tell, mail in a listed language and mail between colleagues are not."""
    from mailmoat.analyzers.base import AnalyzerEnv
    from mailmoat.analyzers.language import LanguageAnalyzer

    korean = Message(subject="안내", text=TEXTS["ko"])
    assert not LanguageAnalyzer(AnalyzerEnv(settings=settings)).enabled()
    assert await _not_read_here(settings, korean) == []
    settings.org.languages = ["en", "zh"]
    assert LanguageAnalyzer(AnalyzerEnv(settings=settings)).enabled()
    (evidence,) = await _not_read_here(settings, korean)
    assert "Korean" in evidence and "reads English, Chinese" in evidence
    assert await _not_read_here(settings, Message(subject="Order", text=TEXTS["en"])) == []
    assert await _not_read_here(settings, Message(subject="订单", text=TEXTS["zh"])) == []
    assert await _not_read_here(settings, Message(subject="Hallo", text="Danke!")) == []
    assert await _not_read_here(settings, korean, Direction.INTERNAL) == []


def test_unknown_language_codes_are_refused(tmp_path: Path) -> None:
    """A typo would mark every inbound message: the configuration is refused with the known codes."""
    from mailmoat.config import ConfigError, load

    good = tmp_path / "good.toml"
    good.write_text('[org]\nlanguages = ["en", "zh"]\n', encoding="utf-8")
    assert load(good).org.languages == ["en", "zh"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[org]\nlanguages = ["english"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"org.languages: unknown language codes \['english'\]"):
        load(bad)
