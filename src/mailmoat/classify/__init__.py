"""The statistical classifier: tokens of a Message, a persisted model, and learning from verdicts."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from mailmoat.classify import nearcopy
from mailmoat.classify.bayes import HAM, LABELS, BayesModel, Classification, ModelError, as_label
from mailmoat.classify.language import NAMES, count, language_of, spam_only, uncount
from mailmoat.classify.tokens import message_tokens
from mailmoat.config import Settings
from mailmoat.model import Message

__all__ = [
    "LABELS",
    "BayesModel",
    "Classification",
    "Classifier",
    "ModelError",
    "as_label",
    "learn_verdict",
    "message_tokens",
    "model_path",
    "model_source",
    "model_status",
    "near_copy_count",
    "near_copy_path",
    "upgrade_model",
]


MODEL_NAME = "bayes.model"
# Where models were kept before the compact format (mailmoat-bayes/1 and /2 are JSON).
LEGACY_NAME = "bayes.json"


def model_path(settings: Settings) -> Path:
    """Where the model is saved: `classifier.model` if set, else `<data_dir>/models/bayes.model`."""
    if settings.classifier.model:
        return Path(settings.classifier.model)
    return settings.models_dir / MODEL_NAME


def near_copy_path(model: Path) -> Path:
    """Where the near copies of condemned mail are kept: beside the model file."""
    return model.with_name(nearcopy.FILE_NAME)


def model_source(path: Path) -> Path | None:
    """The file the model saved at `path` is read from, or None when there is none yet.

    That is `path` itself or, while a `bayes.model` has not been written yet, the `bayes.json`
    beside it that older versions wrote: it keeps working without a retrain, and the next save
    (a retrain or a learnt verdict) writes `bayes.model`, which is read from then on.
    """
    if path.exists():
        return path
    if path.name == MODEL_NAME:
        legacy = path.with_name(LEGACY_NAME)
        if legacy.exists():
            return legacy
    return None


def upgrade_model(settings: Settings) -> Path | None:
    """Write the older `bayes.json` beside the model path as `bayes.model`, once; the path written, or None.

    Run before the gateway starts its workers: each would otherwise convert the JSON on its own
    (about 8 s and 570 MB at its peak for a model of 1.5 million tokens), all at the same time.
    A damaged file is left for the classifier to report, as before.
    """
    path = model_path(settings)
    source = model_source(path)
    if not settings.classifier.enabled or source is None or source == path:
        return None
    Classifier.open(path).save()
    return path


def model_status(settings: Settings, store: Any = None) -> dict[str, Any]:
    """What the console and the API show of the classifier: whether it has a model, what the model
    has learnt (read from the file's header only) and how the gateway keeps it learning; with a
    store, the near copies its recalls hold count too."""
    cfg = settings.classifier
    path = model_path(settings)
    source = model_source(path)
    out: dict[str, Any] = {
        "enabled": cfg.enabled,
        "path": str(source or path),
        "trained": False,
        "format": None,
        "messages": None,  # messages learnt per label; None for an older JSON model until its next save
        "tokens": None,
        "languages": None,  # per language learnt from directories: [ham, spam and phishing]
        "spam_only_languages": [],  # names of languages learnt (almost) only from spam and phishing
        "saved_at": None,
        "error": "",
        "learn_every_hours": cfg.learn_every_hours,
        "learn_delivered_after_days": cfg.learn_delivered_after_days,
        "learn_outbound_after_days": cfg.learn_outbound_after_days,
        "near_copies": near_copy_count(settings, store),
    }
    if source is None:
        return out
    try:
        described = BayesModel.describe(source)
        saved_at = source.stat().st_mtime
    except FileNotFoundError:
        return out
    except (OSError, ModelError) as exc:
        out["error"] = str(exc)
        return out
    out.update(described, saved_at=saved_at)
    out["spam_only_languages"] = [NAMES.get(lang, lang) for lang in spam_only(described["languages"])]
    learnt = described["messages"]
    # `mailmoat train` writes no model without both classes, so an older JSON one is a trained one.
    out["trained"] = learnt is None or (learnt["ham"] > 0 and learnt["spam"] + learnt["phish"] > 0)
    return out


def near_copy_count(settings: Settings, store: Any = None) -> int | None:
    """Messages kept for near-copy matching: the file's and, with a store, the recalled ones
    (None: switched off, or neither could be read)."""
    from mailmoat.classify.store_learning import remembered_in_store

    cfg = settings.classifier
    if not (cfg.enabled and cfg.near_copies):
        return None
    counts: list[int] = []
    try:
        counts.append(nearcopy.NearCopies.count(near_copy_path(model_path(settings))))
    except FileNotFoundError:
        counts.append(0)
    except (OSError, ModelError):
        pass
    if store is not None:
        with contextlib.suppress(Exception):  # a database that does not answer: the file's count alone
            counts.append(remembered_in_store(store))
    return sum(counts) if counts else None


class Classifier:
    """A model bound to its file: classify messages, learn administrators' verdicts, save.

    `learn(message, label, key=...)` with a key (e.g. the envelope id) remembers what each
    message was learnt as ("ham", "spam" or "phish"; True means "spam"), so learning the same
    message again is a no-op and a reversed verdict (recalled, then released) moves it from one
    class to the other instead of counting it twice.

    Every message learnt as spam or phishing is also remembered as a sketch for near-copy matching
    (`mailmoat.classify.nearcopy`, kept in `near_copies.json` beside the model); one learnt as ham
    forgets the sketches it resembles.
    """

    def __init__(self, path: Path, model: BayesModel | None = None, fresh: bool = False) -> None:
        self.path = path
        self.model = model if model is not None else BayesModel()
        self._learned: dict[str, str] = {}
        self._lock = threading.Lock()
        # Near-copy changes since the last save, applied to the file then (nearcopy.apply). fresh:
        # a retrain from files starts a new memory too, as it starts a new model.
        self._near_changes: list[nearcopy.Change] = []
        self._near_fresh = fresh
        self._load_learned()

    @classmethod
    def for_settings(cls, settings: Settings) -> Classifier:
        return cls(model_path(settings))

    @classmethod
    def open(cls, path: Path, shared: bool = False) -> Classifier:
        """The model saved at `path` (see `model_source`), or an empty one when there is none yet.

        ModelError if the file is damaged. It is saved to `path` whichever file it was read from.
        """
        source = model_source(path)
        model = BayesModel.load(source, shared=shared) if source is not None else BayesModel()
        return cls(path, model)

    @property
    def _learned_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".learned.json")

    def _load_learned(self) -> None:
        try:
            data = json.loads(self._learned_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            # Older files hold true/false (spam/ham).
            self._learned = {str(k): as_label(v) for k, v in data.items() if isinstance(v, bool) or v in LABELS}

    @property
    def trained(self) -> bool:
        return self.model.trained

    def classify(self, message: Message) -> Classification:
        return self.model.classify_tokens(message_tokens(message))

    def learned_as(self, key: str) -> str | None:
        return self._learned.get(key)

    def learn(self, message: Message, label: bool | str, key: str = "", save: bool = True) -> bool:
        """Learn one verdict (release = ham, recall = phish); returns False if already known as that."""
        return self.learn_tokens(message_tokens(message), label, key=key, save=save, language=language_of(message))

    def learn_tokens(
        self, tokens: set[str], label: bool | str, key: str = "", save: bool = False, name: str = "", language: str = ""
    ) -> bool:
        """As `learn`, from tokens already extracted (bulk training tokenises in worker processes).

        `name` names a message learnt without a key (a file) in near-copy evidence; `language`
        (`classify.language`) is counted in the model's header, and a verdict learnt again under
        another label moves its count.
        """
        label = as_label(label)
        with self._lock:
            if key:
                before = self._learned.get(key)
                if before == label:
                    return False
                if before is not None:
                    self.model.unlearn_tokens(tokens, before)
                    uncount(self.model.languages, language, before)
                self._learned[key] = label
            self.model.learn_tokens(tokens, label)
            count(self.model.languages, language, label)
            self._remember(tokens, label, key, name)
        if save:
            self.save()
        return True

    def _remember(self, tokens: set[str], label: str, key: str, name: str) -> None:
        values = nearcopy.sketch(tokens)
        if values is None:
            return
        # Ham (a release, or ham from files) forgets what it resembles; mail learnt from files has
        # no key, so its file name names it, or else its sketch.
        name = key or (name if label != HAM else "") or f"sketch:{values[0]:016x}"
        self._near_changes.append(nearcopy.Change(name, label, values, time.time()))

    def save(self) -> None:
        self.model.save(self.path)
        if self._near_changes or self._near_fresh:
            nearcopy.apply(near_copy_path(self.path), self._near_changes, clear=self._near_fresh)
            self._near_changes, self._near_fresh = [], False
        if self._learned:
            tmp = self._learned_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._learned, sort_keys=True), encoding="utf-8")
            tmp.replace(self._learned_path)


def learn_verdict(settings: Settings, raw: bytes, label: bool | str, key: str) -> bool:
    """Learn one administrator's verdict now (release = ham, recall = phish) and save the model.

    For the quarantine-release and recall code paths; `mailmoat train --from-store` does the same
    in bulk. Returns False when there is no model yet or the message was already learnt so.
    The gateway's classifier picks the new model file up within a minute.
    """
    from mailmoat.parse import parse

    path = model_path(settings)
    if not settings.classifier.enabled or model_source(path) is None:
        return False
    clf = Classifier.open(path)
    return clf.learn(parse(raw, qr=settings.qr), label, key=key, save=True)
