"""Words disguised with look-alike letters of another alphabet are read plainly; real writing in those alphabets is not touched."""

from __future__ import annotations

import pytest

from mailmoat.parse.homoglyphs import disguised_words, unmask


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("Verify уоur ассоunt", "Verify your account"),  # Cyrillic у, о, а, с
        ("Lеԁgеr ԝаllеt", "Ledger wallet"),  # Cyrillic е, ԁ, ԝ, а
        ("Dear vɑlued user", "Dear valued user"),  # Latin alpha, a phonetic letter
        ("Αviatiοn", "aviation"),  # Greek capital Alpha and omicron: read in lower case
        ("工资补贴 pаypаl", "工资补贴 paypal"),
        ("Applе ID", "Apple ID"),  # a Cyrillic е at the end is still a disguise
    ],
)
def test_disguised_words_are_read_plainly(text: str, plain: str) -> None:
    assert unmask(text) == plain
    assert disguised_words(text)


@pytest.mark.parametrize(
    "text",
    [
        "Здравствуйте, это обычное письмо.",  # Russian in its own letters
        "Καλημέρα σας",  # Greek
        "Café, naïve, Straße, Æsir",  # Latin's own accented and extra letters
        "ordinary ASCII text",
        "财务部通知",
        "TNFα and PPARγ levels",  # Greek letters ending a name: how science writes
    ],
)
def test_writing_in_its_own_alphabet_is_left_alone(text: str) -> None:
    assert unmask(text) == text
    assert disguised_words(text) == []
