"""Property: the text helpers that lexicons and rules call on a message's words never raise, whatever the text."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailmoat.analyzers.lexicon import _found, load_builtin, normalise, phone_number
from mailmoat.rules import functions as fn

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LEXICONS = load_builtin()

# Pieces that meet the edges of these helpers: digits in every width, brackets, separators,
# Chinese words around numbers, addresses, greetings, and terms of one lexicon inside another's.
_pieces = st.sampled_from(
    [
        "1", "0", "13800138000", "０", "１３８", "(", ")", "（", "）", "-", ".", " ", "  ", "\n", "+", "+86 ",
        "电话", "联系人张", "代开发票", "代开", "向外代开", "点数", "verify your account", "verify your", "paypal", "pay",
        "@", "a@b.example", "Jane.Doe@Gmail.com", "x@", "@gmail.com", "Dear ", "Hallo ", "尊敬的", "staff@example.org",
        "\u200b", "é", "ß", "İ", "ﬁ", "\ud7ff", "𝐕", "#", "_",
    ]
)
texts = st.lists(st.one_of(_pieces, st.text(max_size=8)), max_size=40).map("".join)


@FAST
@given(texts)
@example("联系电话:013826588844 (24小时)")
@example("call +1 (808) 555-0143.")
def test_phone_number_is_a_number_of_ten_to_fifteen_digits_or_none(text: str) -> None:
    number = phone_number(text)
    if number is not None:
        assert 10 <= sum(c.isdigit() for c in number) <= 15
        assert number[-1].isdigit() and (number[0].isdigit() or number[0] in "+(")


@FAST
@given(texts)
def test_lexicon_terms_found_are_terms_of_their_lexicon(text: str) -> None:
    for symbol, terms in _found(LEXICONS, normalise(text)).items():
        assert set(terms) <= LEXICONS.lexicons[symbol].terms.keys()


@FAST
@given(texts, st.sampled_from(["staff@example.org", "a@b.example", "jane", "", "尊敬的"]))
def test_greets_and_address_domains_never_raise(text: str, name: str) -> None:
    assert fn.greets(text, name) in (True, False)
    domains = fn.address_domains(text)
    assert len(domains) == len(set(domains)) <= 50
    assert all(d == d.lower() and "." in d for d in domains)
