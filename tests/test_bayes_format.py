"""The compact model format: hashed tokens in arrays, learning after load, legacy JSON models, damage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.classifier import ClassifierAnalyzer, no_model_note
from mailmoat.classify import (
    BayesModel,
    Classification,
    Classifier,
    ModelError,
    bayes,
    learn_verdict,
    message_tokens,
    model_path,
    model_source,
    model_status,
    upgrade_model,
)
from mailmoat.config import Settings
from mailmoat.model import Envelope
from tests.support.mailgen import synthetic_eml, synthetic_message

V2 = {
    "format": "mailmoat-bayes/2",
    "labels": ["ham", "spam", "phish"],
    "scripts": ["latin", "cjk"],
    "n": [60, 0, 55, 0, 70, 0],
    "tokens": {
        "prize": [1, 0, 30, 0, 2, 0],
        "meeting": [40, 0, 1, 0, 0, 0],
        "today": [20, 0, 18, 0, 25, 0],
        "verify": [0, 0, 3, 0, 50, 0],
        "offer": [5, 0, 40, 0, 1, 0],
        "rare": [0, 0, 1, 0, 0, 0],
    },
}
# What the JSON model above gave before the compact format (the previous code, run on it).
V2_BEFORE = [
    (["prize", "offer", "today", "rare"], 0.9790095110163608, "spam/latin",
     [("prize", 0.963620430324093, 31), ("offer", 0.8932636254279633, 45), ("rare", 0.8448275862068967, 1)]),
    (["verify", "today", "meeting"], 0.5154742754615155, "all", [("verify", 0.99, 53), ("meeting", 0.017157201638242178, 41)]),
    (["meeting", "today"], 0.023343584210894833, "spam/latin", [("meeting", 0.03168867491486704, 41)]),
]


def _same(a: Classification, b: Classification) -> None:
    assert (a.prob, a.view) == (b.prob, b.view)
    assert [(c.token, c.prob, c.seen) for c in a.clues] == [(c.token, c.prob, c.seen) for c in b.clues]


def _samples(seed: int, n: int = 12) -> list[set[str]]:
    rng = random.Random(seed)
    return [
        message_tokens(synthetic_message(rng, spam=i % 2 == 0, chinese=i % 3 == 0)) | {"never-seen-token"}
        for i in range(n)
    ]


def _trained(seed: int = 1, n: int = 90) -> BayesModel:
    """Enough of every kind in both scripts that the kind views are read too."""
    rng = random.Random(seed)
    model = BayesModel()
    for i in range(n):
        for chinese in (False, True):
            model.learn_tokens(message_tokens(synthetic_message(rng, spam=False, chinese=chinese)), "ham")
            model.learn_tokens(message_tokens(synthetic_message(rng, spam=True, chinese=chinese)), "spam" if i % 3 else "phish")
    return model


def test_round_trip_gives_the_same_probabilities_and_clues(tmp_path: Path) -> None:
    model = _trained()
    path = tmp_path / "bayes.model"
    model.save(path)
    again = BayesModel.load(path)
    assert len(again) == len(model) and again.n == model.n
    views = set()
    for toks in _samples(5, 30):
        got = again.classify_tokens(toks)
        _same(got, model.classify_tokens(toks))
        views.add(got.view)
    assert len(views) > 1  # kind views were read, not only the pooled one
    # The file: one JSON header line, then 8 bytes of hash and 6 counts of 4 bytes per token.
    head, _, rest = path.read_bytes().partition(b"\n")
    header = json.loads(head)
    assert header["format"] == "mailmoat-bayes/3" and header["tokens"] == len(model) and header["n"] == model.n
    assert len(rest) == len(model) * (8 + 6 * 4)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("shared", [False, True], ids=["read", "mapped"])
def test_learning_after_load_matches_a_model_that_never_left_memory(tmp_path: Path, shared: bool) -> None:
    """Learn, unlearn and prune on a loaded model (arrays, or a mapped file) and on one kept in memory (dict): same answers."""
    path = tmp_path / "bayes.model"
    twins = []
    for _ in range(2):
        model = _trained(n=30)
        model.learn_tokens({"solo", "meeting"}, "ham")  # "solo": in this one message only
        twins.append(model)
    twins[0].save(path)
    loaded, reference = BayesModel.load(path, shared=shared), twins[1]  # the reference was never compacted
    saved = path.read_bytes()
    rng = random.Random(3)
    msgs = [message_tokens(synthetic_message(rng, spam=i % 2 == 1, chinese=i % 4 == 0)) for i in range(10)]
    msgs.append({"brand-new-token", "another-new-one", "meeting"})  # new tokens and a known one
    for model in (reference, loaded):
        for i, toks in enumerate(msgs):
            model.learn_tokens(toks, ("ham", "spam", "phish")[i % 3])
        model.unlearn_tokens(msgs[0], "ham")  # tokens in the arrays
        model.unlearn_tokens(msgs[-1], "spam")  # learnt after loading: in the overlay, gone again
        model.unlearn_tokens({"solo", "meeting"}, "ham")  # "solo" drops to nothing in the arrays
        model.unlearn_tokens({"never-learnt"}, "ham")
        assert model.classify_tokens({"solo"}).clues == model.classify_tokens({"brand-new-token"}).clues == []
    assert len(loaded) == len(reference)
    for toks in _samples(7) + msgs:
        _same(loaded.classify_tokens(toks), reference.classify_tokens(toks))
    assert path.read_bytes() == saved  # a mapped model learns into its own pages, never the file
    # Prune drops the same tokens from both.
    assert loaded.prune(3) == reference.prune(3) > 0
    assert len(loaded) == len(reference)
    for toks in _samples(7) + msgs:
        _same(loaded.classify_tokens(toks), reference.classify_tokens(toks))
    # Saved and loaded once more: still the same.
    loaded.learn_tokens({"after-prune"}, "phish")
    loaded.save(path)
    again = BayesModel.load(path)
    reference.learn_tokens({"after-prune"}, "phish")
    assert len(again) == len(reference) and again.n == reference.n
    for toks in _samples(8) + msgs + [{"after-prune"}]:
        _same(again.classify_tokens(toks), reference.classify_tokens(toks))


def test_a_revived_row_and_an_emptied_one_survive_compaction(tmp_path: Path) -> None:
    model = BayesModel()
    model.learn_tokens({"f"}, "ham")
    model.learn_tokens({"a", "b", "c"}, "ham")
    model.learn_tokens({"c", "d"}, "spam")
    model.compact()
    model.unlearn_tokens({"a", "b", "c"}, "ham")  # a and b empty; c keeps its spam count
    model.learn_tokens({"a", "e"}, "phish")  # a comes back; e is new
    assert len(model) == 5  # a, c, d, e, f
    model.save(tmp_path / "m")
    again = BayesModel.load(tmp_path / "m")
    assert len(again) == 5
    assert [c.seen for c in again.classify_tokens({"a"}).clues] == [1]
    assert again.classify_tokens({"b"}).clues == []


def test_legacy_json_model_reads_as_before_and_is_rewritten_compact(tmp_path: Path) -> None:
    path = tmp_path / "bayes.model"
    path.write_text(json.dumps(V2))
    model = BayesModel.load(path)
    assert (model.nspam, model.nham, len(model)) == (125, 60, 6)
    for toks, prob, view, clues in V2_BEFORE:
        got = model.classify_tokens(toks)
        assert (got.prob, got.view) == (prob, view)
        assert [(c.token, c.prob, c.seen) for c in got.clues] == clues
    model.save(path)
    assert path.read_bytes().startswith(b'{"format":"mailmoat-bayes/3"')
    again = BayesModel.load(path)
    for toks, *_ in V2_BEFORE:
        _same(again.classify_tokens(toks), model.classify_tokens(toks))


def test_a_mapped_model_reads_as_a_read_one_and_outlives_a_retrain(tmp_path: Path) -> None:
    path = tmp_path / "bayes.model"
    model = _trained()
    model.save(path)
    mapped, read = BayesModel.load(path, shared=True), BayesModel.load(path)
    assert isinstance(mapped._keys, memoryview) and len(mapped) == len(read)
    for toks in _samples(9, 20):
        _same(mapped.classify_tokens(toks), read.classify_tokens(toks))
    # A retrain replaces the file (rename): the mapped model keeps reading the old one.
    other = _trained(seed=2, n=20)
    other.save(path)
    for toks in _samples(9, 5):
        _same(mapped.classify_tokens(toks), read.classify_tokens(toks))
    # A damaged file is refused mapped as it is read.
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ModelError, match="checksum"):
        BayesModel.load(path, shared=True)
    path.write_bytes(good[:-3])
    with pytest.raises(ModelError, match="truncated"):
        BayesModel.load(path, shared=True)
    # An empty model maps to nothing and still reads.
    empty = tmp_path / "empty.model"
    BayesModel().save(empty)
    assert len(BayesModel.load(empty, shared=True)) == 0


def _damaged(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    with pytest.raises(ModelError) as err:
        BayesModel.load(path)
    return str(err.value)


def test_a_damaged_compact_model_is_a_clear_error(tmp_path: Path) -> None:
    src, path = tmp_path / "good.model", tmp_path / "bayes.model"
    _trained(n=3).save(src)
    good = src.read_bytes()
    head, _, body = good.partition(b"\n")
    header = json.loads(head)
    assert "truncated" in _damaged(path, good[:-5])
    assert "truncated" in _damaged(path, head + b"\n")
    assert "trailing bytes" in _damaged(path, good + b"\0")
    assert "no complete header line" in _damaged(path, head)
    assert "header" in _damaged(path, head[:-1] + b",}\n" + body)
    assert "cells" in _damaged(path, json.dumps({**header, "labels": ["ham", "spam"]}, separators=(",", ":")).encode() + b"\n" + body)
    assert "byte order" in _damaged(path, json.dumps({**header, "hash": "crc32"}, separators=(",", ":")).encode() + b"\n" + body)
    assert "truncated" in _damaged(path, json.dumps({**header, "tokens": 10**15}, separators=(",", ":")).encode() + b"\n" + body)
    for bad in ({"tokens": -1}, {"tokens": "many"}, {"n": [1, 2]}, {"n": [1, 0, 0, 0, -1, 0]}):
        assert "header" in _damaged(path, json.dumps({**header, **bad}, separators=(",", ":")).encode() + b"\n" + body)
    assert str(path) in _damaged(path, good[:-5])  # the message names the file
    # The right length but a changed byte (a count, or a hash that would break the lookups' order).
    assert "checksum" in _damaged(path, good[:-1] + bytes([good[-1] ^ 1]))
    assert "checksum" in _damaged(path, head + b"\n" + body[:3] + bytes([body[3] ^ 0x80]) + body[4:])
    without = {k: v for k, v in header.items() if k != "checksum"}
    assert "checksum" in _damaged(path, json.dumps(without, separators=(",", ":")).encode() + b"\n" + body)


def test_the_default_model_file_and_the_legacy_one_beside_it(settings: Settings) -> None:
    path = model_path(settings)
    legacy = path.with_name("bayes.json")
    assert path.name == "bayes.model" and model_source(path) is None and no_model_note(settings)
    # An older installation's model keeps working without a retrain.
    legacy_model = _trained(n=55)  # never saved: every token is still in its dict, by name
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({**V2, "n": legacy_model.n, "tokens": legacy_model._new}))
    assert model_source(path) == legacy and no_model_note(settings) is None
    analyzer = ClassifierAnalyzer(AnalyzerEnv(settings=settings))
    rng = random.Random(4)
    msg = synthetic_message(rng, spam=True, chinese=False)
    assert analyzer.classifier is not None
    _same(analyzer.classifier.classify(msg), legacy_model.classify_tokens(message_tokens(msg)))
    # A learnt verdict saves bayes.model (the legacy file stays as it was) ...
    before = legacy.read_bytes()
    assert learn_verdict(settings, synthetic_eml(rng, spam=True, chinese=False), "phish", key="m1")
    assert path.exists() and legacy.read_bytes() == before and model_source(path) == path
    assert path.read_bytes().startswith(b'{"format":"mailmoat-bayes/3"')
    assert path.with_name("bayes.learned.json").exists()
    clf = Classifier.open(path)
    assert clf.learned_as("m1") == "phish" and clf.model.learnt("phish") == legacy_model.learnt("phish") + 1
    # ... which the gateway's analyzer picks up at its next check.
    analyzer._load()
    assert analyzer.classifier is not None and analyzer.classifier.model.learnt("phish") == clf.model.learnt("phish")


def test_the_legacy_model_is_converted_once_before_the_workers_start(settings: Settings) -> None:
    path = model_path(settings)
    assert upgrade_model(settings) is None  # nothing to convert
    legacy = path.with_name("bayes.json")
    legacy_model = _trained(n=55)
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({**V2, "n": legacy_model.n, "tokens": legacy_model._new}))
    state = model_status(settings)  # from the first bytes: the JSON is not parsed for a status
    assert (state["format"], state["trained"], state["messages"], state["path"]) == ("json", True, None, str(legacy))
    assert upgrade_model(settings) == path and model_source(path) == path
    assert model_status(settings)["messages"] == {label: legacy_model.learnt(label) for label in ("ham", "spam", "phish")}
    assert path.read_bytes().startswith(b'{"format":"mailmoat-bayes/3"')
    for toks in _samples(6):
        _same(BayesModel.load(path).classify_tokens(toks), legacy_model.classify_tokens(toks))
    saved = path.stat().st_mtime_ns
    assert upgrade_model(settings) is None and path.stat().st_mtime_ns == saved  # once only
    settings.classifier.enabled = False
    path.unlink()
    assert upgrade_model(settings) is None and not path.exists()


async def test_the_analyzer_reads_the_default_model(settings: Settings) -> None:
    path = model_path(settings)
    _trained().save(path)
    analyzer = ClassifierAnalyzer(AnalyzerEnv(settings=settings))
    msg = synthetic_message(random.Random(2), spam=True, chinese=True)
    ctx = AnalysisContext(message=msg, envelope=Envelope("a@example.org", ["b@example.com"]), settings=settings)
    (finding,) = await analyzer.analyze(ctx)
    assert finding.symbol == "BAYES_SPAM"


def test_token_hash_is_stable() -> None:
    # The same on every run and machine, unlike Python's hash(): saved models depend on it.
    assert bayes.token_hash("prize") == 0xC30925FB1564F6CA  # blake2b-64 of the UTF-8, read little-endian
    assert 0 <= bayes.token_hash("\udcff lone surrogate") < 2**64


def test_the_languages_learnt_travel_in_the_header(tmp_path: Path, settings: Settings) -> None:
    """Counted by `mailmoat train`, saved in the header, read back by load, describe and the
    console's status; a malformed entry is dropped, not a reason to refuse the model."""
    model = _trained()
    model.languages = {"en": [40, 35], "de": [0, 25]}
    path = model_path(settings)
    model.save(path)
    assert BayesModel.load(path).languages == {"en": [40, 35], "de": [0, 25]}
    assert BayesModel.load(path, shared=True).languages == {"en": [40, 35], "de": [0, 25]}
    assert BayesModel.describe(path)["languages"] == {"en": [40, 35], "de": [0, 25]}
    status = model_status(settings)
    assert status["languages"] == {"en": [40, 35], "de": [0, 25]} and status["spam_only_languages"] == ["German"]
    # A hand-edited header with a bad entry: the model still loads, without that entry.
    head, _, rest = path.read_bytes().partition(b"\n")
    header = json.loads(head)
    header["languages"]["de"] = ["many", 3]
    path.write_bytes(json.dumps(header, separators=(",", ":")).encode() + b"\n" + rest)
    assert BayesModel.load(path).languages == {"en": [40, 35]}
