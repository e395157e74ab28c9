"""Detection evaluation: train the classifier on half of each corpus, scan the other half with the full Scanner.

    .venv/bin/python bench/detection_eval.py /path/to/corpora [MORE_DIRS ...] [--jobs N] [--limit N] [--json out.json]
    .venv/bin/python bench/detection_eval.py /path/to/corpora --dev   # tune here: train halves only
    .venv/bin/python bench/detection_eval.py /path/to/corpora --by-date   # learn older mail, scan newer
    .venv/bin/python bench/detection_eval.py /path/to/corpora --within-train [--by-date]   # tune here too
    .venv/bin/python bench/detection_eval.py /path/to/corpora --unseen /new/corpora   # mail never learnt from
    .venv/bin/python bench/detection_eval.py /path/to/corpora --by-date --learn-releases   # a site's life

CORPUS_DIR holds `<corpus>/<label>/<one message per file>` with labels ham, spam and phish
(other labels, e.g. malformed, are skipped), or is itself one corpus holding those label
directories. Several directories are read together: a new collection of phishing alone gives the
classifier no ham to learn from, so name it beside one that has ham
(`detection_eval.py ../shared/corpora /new/phish-2027`; each corpus is still reported on its
own). To measure mail the model has never seen, give such a collection with `--unseen DIR`
instead: every one of its messages is scanned, none is learnt, and it is reported as
"<corpus> (unseen)", outside the label totals of the others. `--learn-releases` scans the test
messages one by one in the order of their Date headers, and every legitimate message quarantined
is released by an administrator and learnt as ham: a site's life, where the first false
positive of a new kind of mail teaches the model (one process; slower). A verdict is learnt once
the mail being scanned is dated `--learn-after` hours (24, the gateway's `learn_every_hours`)
after the message it judged: the gateway learns releases and recalls into the model on its
scheduled run, and into the near-copy memory at once, so this is the slower of the two. With
`--recall-share P`, each spam or phishing message let through is also reported, recalled and
learnt as phishing with probability P.

Every (corpus, label) is split 50/50 with a fixed seed (`--by-date`: into the older and the
newer half by the messages' Date headers, which asks how the detection holds on mail sent after
everything it learnt, as it will at a site); the classifier is trained on the
train halves (ham, spam and phish as their own labels) in a temporary data dir; the test halves
are scanned at the default policy. For each corpus and label it prints the share of messages quarantined or rejected (detection for spam/phish, false
positives for ham) and tagged, then the same after rewriting every Date and Received header to
one recent date, so a detector that keys on the age of the mail would show it. Nothing here opens
an attachment outside the parser.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import functools
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LABELS = ("ham", "spam", "phish")
UNSEEN = " (unseen)"  # after the name of a corpus given with --unseen: scanned in full, never learnt
SEED = 20240601
RECENT_DATE = "Tue, 18 Nov 2025 09:30:00 +0000"
DETECTED = {"quarantine", "reject"}
BAYES = {"BAYES_SPAM", "BAYES_HAM"}


# -- corpus handling ------------------------------------------------------------------------


def discover(root: Path) -> dict[tuple[str, str], list[Path]]:
    """Every `<corpus>/<label>/` under root; root itself is one corpus when it holds label directories."""
    sets: dict[tuple[str, str], list[Path]] = {}
    if any((root / label).is_dir() for label in LABELS):
        corpora = [root]
    elif root.is_dir():
        corpora = sorted(p for p in root.iterdir() if p.is_dir())
    else:
        corpora = []
    for corpus in corpora:
        for label in LABELS:
            d = corpus / label
            if d.is_dir():
                files = sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
                if files:
                    sets[(corpus.resolve().name, label)] = files
    return sets


def discover_or_say(roots: Path | list[Path]) -> dict[tuple[str, str], list[Path]]:
    """`discover` over one or several directories (a corpus named twice is read as one), saying on
    stderr when there is nothing to read (the caller then exits with 2)."""
    sets: dict[tuple[str, str], list[Path]] = {}
    for root in [roots] if isinstance(roots, Path) else roots:
        for cell, files in discover(root).items():
            sets[cell] = sorted(set(sets.get(cell, [])) | set(files))
    if not sets:
        where = roots if isinstance(roots, Path) else " or ".join(map(str, roots))
        print(f"no <corpus>/<ham|spam|phish>/ directories under {where}", file=sys.stderr)
    return sets


def corpus_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every evaluation script takes: the corpora's directories and the processes to use."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    ap.add_argument(
        "corpus_dir", type=Path, nargs="+",
        help="directories of <corpus>/<label>/ (or one <corpus> holding ham/, spam/, phish/); several are read together",
    )
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    return ap


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = re.compile(rb"^([!-9;-~]+):", re.MULTILINE)
_DATE = re.compile(rb"^Date:[ \t]*([^\r\n]*)", re.MULTILINE | re.IGNORECASE)


@functools.cache
def sent_at(path: Path) -> float | None:
    """When the message says it was sent (its first Date header, as a timestamp), or None.

    Kept per path: the split and the count of undated messages ask about the same files."""
    with path.open("rb") as fh:
        head = _HEADER_END.split(fh.read(65536), 1)[0]
    m = _DATE.search(head)
    if not m:
        return None
    try:
        when = email.utils.parsedate_to_datetime(m.group(1).decode("latin-1").strip())
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def in_date_order(
    cells: dict[tuple[str, str], list[Path]], corpus: str, jobs: int
) -> tuple[list[tuple[float, str, str]], list[Any], Counter[str]]:
    """One corpus's messages whose Date can be read, oldest first, as (Date, label, path) and parsed
    (in `jobs` processes), and per label how many had no readable Date: the replays' arrivals."""
    items: list[tuple[float, str, str]] = []
    undated: Counter[str] = Counter()
    for (c, label), files in cells.items():
        if c != corpus:
            continue
        for f in files:
            when = sent_at(f)
            if when is None:
                undated[label] += 1
            else:
                items.append((when, label, str(f)))
    items.sort()
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        messages = list(pool.map(_parse_file, [p for _, _, p in items], chunksize=32))
    return items, messages, undated


def _parse_file(path: str) -> Any:
    from mailmoat.parse import parse

    return parse(Path(path).read_bytes())


def split(files: list[Path], seed: int = SEED, by_date: bool = False) -> tuple[list[Path], list[Path]]:
    """50/50 split: (train, test). Fixed-seed shuffle, or, by_date, the older half against the newer.

    By date, messages whose Date header cannot be read are put in the train half: they cannot be
    placed in time, and the test half is meant to be mail sent after everything learnt.
    """
    order = sorted(files)
    if by_date:
        when = {p: sent_at(p) for p in order}
        undated = [p for p in order if when[p] is None]
        dated = sorted((p for p in order if when[p] is not None), key=lambda p: (when[p], p))
        # Fewer dated messages than half the cell: all of them are the test half (a negative
        # start would wrap around and keep only the newest few).
        test = dated[max(len(dated) - len(order) // 2, 0) :]
        return undated + dated[: len(dated) - len(test)], test
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return order[:half], order[half:]


def train_items(
    sets: dict[tuple[str, str], list[Path]], seed: int = SEED, by_date: bool = False
) -> list[tuple[tuple[str, str], str]]:
    """(cell, path) of every train-half message, cell by cell: what the train-only scripts read."""
    items: list[tuple[tuple[str, str], str]] = []
    for cell, files in sorted(sets.items()):
        train, _ = split(files, seed, by_date)
        items += [(cell, str(p)) for p in train]
    return items


def rewrite_dates(raw: bytes, when: str = RECENT_DATE) -> bytes:
    """The message with every top-level Date header set to `when` and every Received header's
    timestamp (after its last ';') replaced by `when`; the body is untouched."""
    m = _HEADER_END.search(raw)
    if not m:
        return raw
    head, rest = raw[: m.start()], raw[m.start() :]
    nl = b"\r\n" if b"\r\n" in head[:2000] else b"\n"
    lines = head.split(nl)
    fields: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    out: list[bytes] = []
    stamp = when.encode()
    for f in fields:
        name = f[0].split(b":", 1)[0].strip().lower()
        if name == b"date":
            out.append(b"Date: " + stamp)
        elif name == b"received":
            value = nl.join(f)
            head_part, sep, _ = value.rpartition(b";")
            out.append((head_part + b"; " + stamp) if sep else value)
        else:
            out.extend(f)
    return nl.join(out) + rest


# -- worker side ----------------------------------------------------------------------------

_state: dict[str, Any] = {}


def _init_train() -> None:
    from mailmoat.config import Settings

    _state["qr"] = Settings().qr


def _tokens(path: str) -> tuple[str, list[str] | None]:
    from mailmoat.classify import message_tokens
    from mailmoat.parse import parse

    try:
        raw = Path(path).read_bytes()
        return path, sorted(message_tokens(parse(raw, qr=_state["qr"])))
    except Exception:
        return path, None


def unseen_items(roots: list[Path], limit: int = 0, seed: int = SEED) -> list[tuple[str, str, str]] | None:
    """Every message of the corpora given with --unseen, as (corpus + UNSEEN, label, path), at most
    `limit` per label (a fixed random draw); None, said on stderr, when there is nothing to read."""
    sets = discover_or_say(roots)
    if not sets:
        return None
    items: list[tuple[str, str, str]] = []
    for (corpus, label), files in sorted(sets.items()):
        if limit:
            files = sorted(files)
            random.Random(seed).shuffle(files)
            files = files[:limit]
        items += [(corpus + UNSEEN, label, str(p)) for p in files]
        print(f"{corpus}/{label}: {len(files)} unseen, all scanned, none learnt", file=sys.stderr)
    return items


def trained_model(train: list[tuple[tuple[str, str], str]], tokens: dict[str, list[str] | None]) -> Any:
    """A classifier model learnt from the train items' tokens (those that could not be read left out)."""
    from mailmoat.classify.bayes import BayesModel

    model = BayesModel()
    for (_, label), path in train:
        toks = tokens[path]
        if toks is not None:
            model.learn_tokens(toks, label)
    return model


def learn_files(clf: Any, labelled: list[tuple[str, str]], jobs: int, keyed: bool = False) -> int:
    """Learn (path, label) files into a `Classifier`, tokenised in worker processes; how many could
    not be read. `keyed`: each as a verdict of the store is learnt, under its file name as key."""
    label_of = dict(labelled)
    failed = 0
    with ProcessPoolExecutor(jobs, initializer=_init_train) as pool:
        for path, tokens in pool.map(_tokens, list(label_of), chunksize=16):
            if tokens is None:
                failed += 1
            elif keyed:
                clf.learn_tokens(set(tokens), label_of[path], key=Path(path).name)
            else:
                clf.learn_tokens(set(tokens), label_of[path], name=path)
    return failed


def tokenised_sample(
    sets: dict[tuple[str, str], list[Path]], jobs: int, sample: int, seed: int = SEED
) -> tuple[list[tuple[tuple[str, str], str]], list[str], dict[str, list[str] | None]]:
    """The train-half items, a fixed random sample of test-half paths, and the classifier tokens of
    both (None where a message could not be read), tokenised in `jobs` processes."""
    train = train_items(sets, seed)
    test = [str(p) for files in sets.values() for p in split(files, seed)[1]]
    test = random.Random(1).sample(test, min(sample, len(test)))
    tokens: dict[str, list[str] | None] = {}
    with ProcessPoolExecutor(jobs, initializer=_init_train) as pool:
        for path, toks in pool.map(_tokens, [p for _, p in train] + test, chunksize=32):
            tokens[path] = toks
    return train, test, tokens


def _dev_features(path: str) -> tuple[str, list[str] | None, list[str], float]:
    """Classifier tokens and the content heuristics that fire, for the development (train-only) mode."""
    from mailmoat.analyzers.base import AnalyzerEnv
    from mailmoat.analyzers.content import ContentAnalyzer
    from mailmoat.classify import message_tokens
    from mailmoat.config import Settings
    from mailmoat.parse import parse

    try:
        msg = parse(Path(path).read_bytes(), qr=_state["qr"])
        if "content" not in _state:
            _state["content"] = ContentAnalyzer(AnalyzerEnv(Settings()))
        t0 = time.perf_counter()
        symbols = [f.symbol for f in _state["content"].check(msg)]
        took = time.perf_counter() - t0
        return path, sorted(message_tokens(msg)), symbols, took
    except Exception:
        return path, None, [], 0.0


def dev_report(train: list[tuple[str, str, str]], jobs: int, seed: int) -> None:
    """Never reads the test half: split every train half again 60/40, train the classifier on the 60,
    print its probability cut-offs on the 40, and the content heuristics' hit rate on the whole train half."""
    from mailmoat.classify import BayesModel

    by_cell: dict[tuple[str, str], list[str]] = defaultdict(list)
    for corpus, label, path in train:
        by_cell[(corpus, label)].append(path)
    fit: list[tuple[tuple[str, str], str]] = []
    held: list[tuple[tuple[str, str], str]] = []
    for cell, paths in sorted(by_cell.items()):
        order = sorted(paths)
        random.Random(seed + 1).shuffle(order)
        cut = int(len(order) * 0.6)
        fit += [(cell, p) for p in order[:cut]]
        held += [(cell, p) for p in order[cut:]]
    feats: dict[str, tuple[list[str] | None, list[str]]] = {}
    took: list[float] = []
    with ProcessPoolExecutor(jobs, initializer=_init_train) as pool:
        for path, tokens, symbols, seconds in pool.map(_dev_features, [p for _, _, p in train], chunksize=16):
            feats[path] = (tokens, symbols)
            took.append(seconds)
    model = BayesModel()
    for (_, label), path in fit:
        tokens = feats[path][0]
        if tokens is not None:
            model.learn_tokens(tokens, label)
    cuts = (0.5, 0.8, 0.9, 0.95, 0.99)
    print("## Development split: classifier alone, trained on 60% of each train half, on the other 40%\n")
    print("| corpus | label | msgs | " + " | ".join(f"p ≥ {c:g}" for c in cuts) + " |")
    print("|---|---|---:|" + "---:|" * len(cuts))
    probs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cell, path in held:
        tokens = feats[path][0]
        if tokens is not None:
            probs[cell].append(model.classify_tokens(tokens).prob)
    for (corpus, label), ps in sorted(probs.items()):
        row = " | ".join(pct(sum(p >= c for p in ps), len(ps)) for c in cuts)
        print(f"| {corpus} | {label} | {len(ps)} | {row} |")
    print("\n## Content heuristics: share of the whole train halves on which each fires\n")
    cells = sorted(by_cell)
    hits: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for corpus, label, path in train:
        hits[(corpus, label)].update(set(feats[path][1]))
    names = sorted({n for c in hits.values() for n in c})
    print("| symbol | " + " | ".join(f"{c}/{lab}" for c, lab in cells) + " |")
    print("|---|" + "---:|" * len(cells))
    for n in names:
        print(f"| {n} | " + " | ".join(pct(hits[c][n], len(by_cell[c])) for c in cells) + " |")
    took.sort()
    if took:
        k = len(took)
        print(
            f"\nContent heuristics cost per message (parsed message in, findings out): mean "
            f"{1e3 * sum(took) / k:.3f} ms, median {1e3 * took[k // 2]:.3f} ms, p99 {1e3 * took[int(k * 0.99) - 1]:.3f} ms, "
            f"max {1e3 * took[-1]:.3f} ms over {k} messages"
        )


def _init_scan(data_dir: str, spam_full: float | None) -> None:
    from mailmoat.config import Settings
    from mailmoat.scanner import Scanner

    settings = Settings()
    settings.data_dir = data_dir
    if spam_full is not None:
        settings.classifier.spam_full = spam_full
    _state["scanner"] = Scanner(settings)
    _state["loop"] = asyncio.new_event_loop()


def _envelope(raw: bytes) -> Any:
    from mailmoat.model import Envelope

    head = raw[:20000].decode("latin-1")
    frm = re.search(r"^From:(.*(?:\n[ \t].*)*)", head, re.MULTILINE | re.IGNORECASE)
    to = re.search(r"^To:(.*(?:\n[ \t].*)*)", head, re.MULTILINE | re.IGNORECASE)
    mail_from = email.utils.parseaddr(frm.group(1))[1] if frm else ""
    rcpt = email.utils.parseaddr(to.group(1))[1] if to else ""
    return Envelope(mail_from=mail_from, rcpt_tos=[rcpt or "user@localhost"], size=len(raw), listener="eval")


def _scan_one(raw: bytes) -> dict[str, Any]:
    try:
        res = _state["loop"].run_until_complete(_state["scanner"].scan(raw, _envelope(raw)))
    except Exception as exc:
        return {"action": "error", "score": 0.0, "findings": [], "error": f"{type(exc).__name__}: {exc}"}
    from mailmoat.classify.language import language_of

    v = res.verdict
    return {
        "action": v.action.value,
        "score": round(v.score, 3),
        "findings": [(f.symbol, round(f.score, 3), f.source) for f in v.findings],
        "bayes_prob": next((f.data.get("prob") for f in v.findings if f.symbol in BAYES), None),
        "language": language_of(res.message),
    }


def _scan(job: tuple[str, str, str]) -> dict[str, Any]:
    corpus, label, path = job
    t0 = time.monotonic()
    raw = Path(path).read_bytes()
    orig = _scan_one(raw)
    rewritten = _scan_one(rewrite_dates(raw))
    return {
        "corpus": corpus,
        "label": label,
        "path": path,
        "orig": orig,
        "rewritten": rewritten,
        "seconds": round(time.monotonic() - t0, 3),
    }


def scan_learning_releases(
    test: list[tuple[str, str, str]], data_dir: str, spam_full: float | None, clf: Any,
    recall_share: float = 0.0, seed: int = SEED, delay: float = 86400.0,
) -> tuple[list[dict[str, Any]], int, int]:
    """Scan in Date order in this process; each ham quarantined is released and learnt as ham into
    `clf` (the model file the scanner reads, with its near-copy memory); with `recall_share`, each
    spam or phishing message let through (delivered or tagged) is, with that probability, reported,
    recalled and learnt as phishing. A verdict is learnt before the first message dated `delay`
    seconds or more after the one it judged. Returns the results, the releases and the recalls."""
    from mailmoat.analyzers.classifier import ClassifierAnalyzer
    from mailmoat.analyzers.near_copy import NearCopyAnalyzer
    from mailmoat.parse import parse

    _init_scan(data_dir, spam_full)
    scanner = _state["scanner"]
    readers = [a for a in scanner.analyzers if isinstance(a, (ClassifierAnalyzer, NearCopyAnalyzer))]
    rng = random.Random(seed + 11)
    results: list[dict[str, Any]] = []
    pending: list[tuple[float, str, str]] = []  # (when it is learnt, path, label), in order
    released = recalled = 0
    t0 = time.monotonic()
    order = sorted(test, key=lambda job: (sent_at(Path(job[2])) or 0.0, job[2]))
    for i, job in enumerate(order, 1):
        now = sent_at(Path(job[2])) or 0.0
        due = [v for v in pending if v[0] <= now]
        if due:
            pending = pending[len(due):]
            for _, path, label in due:
                clf.learn(parse(Path(path).read_bytes(), qr=scanner.settings.qr), label, key=path, save=False)
            clf.save()
            for reader in readers:
                reader._checked = 0.0  # the gateway's workers look again within 30 s; here at once
        r = _scan(job)
        results.append(r)
        action = r["orig"]["action"]
        if job[1] == "ham" and action == "quarantine":
            pending.append((now + delay, job[2], "ham"))
            released += 1
        elif job[1] != "ham" and action in ("deliver", "tag") and recall_share and rng.random() < recall_share:
            pending.append((now + delay, job[2], "phish"))  # a recall joins the phishing kind, as train --from-store does
            recalled += 1
        if i % 500 == 0:
            print(
                f"scanned {i}/{len(order)} in Date order, {released} released, {recalled} recalled "
                f"({time.monotonic() - t0:.0f}s)", file=sys.stderr,
            )
    return results, released, recalled


# -- report ---------------------------------------------------------------------------------


@dataclass
class Cell:
    n: int = 0
    detected: int = 0
    tagged: int = 0
    errors: int = 0
    without_bayes: int = 0  # would reach quarantine without the classifier's score (approximate)
    bayes_alone: int = 0  # the classifier's score alone reaches quarantine
    content_tipped: int = 0  # detected, but only because of the content heuristics' score
    changed: int = 0  # action differs after the date rewrite
    symbols: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)


def summarise(results: list[dict[str, Any]], which: str, quarantine: float) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = defaultdict(Cell)
    for r in results:
        c = cells[(r["corpus"], r["label"])]
        v = r[which]
        c.n += 1
        if v["action"] == "error":
            c.errors += 1
        if v["action"] in DETECTED:
            c.detected += 1
        elif v["action"] == "tag":
            c.tagged += 1
        bayes = sum(s for name, s, _ in v["findings"] if name in BAYES)
        if v["score"] - bayes >= quarantine:
            c.without_bayes += 1
        if bayes >= quarantine:
            c.bayes_alone += 1
        content = sum(s for _, s, source in v["findings"] if source == "content")
        if v["action"] in DETECTED and v["score"] - content < quarantine:
            c.content_tipped += 1
        if r["orig"]["action"] != r["rewritten"]["action"]:
            c.changed += 1
        for name, s, _ in v["findings"]:
            if s > 0:
                c.symbols[name] += 1
        is_bad = r["label"] != "ham"
        if (v["action"] in DETECTED) != is_bad:
            c.misses.append(r["path"])
    return cells


def pct(a: int, n: int) -> str:
    return f"{100.0 * a / n:.2f}%" if n else "-"


def table(cells: dict[tuple[str, str], Cell], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| corpus | label | test msgs | quarantine or reject | tag only | delivered | classifier alone ≥ quarantine | other engines alone ≥ quarantine | tipped by content heuristics | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (corpus, label), c in sorted(cells.items()):
        what = "false positives" if label == "ham" else "detected"
        lines.append(
            f"| {corpus} | {label} | {c.n} | {pct(c.detected, c.n)} ({what}) | {pct(c.tagged, c.n)} | "
            f"{pct(c.n - c.detected - c.tagged, c.n)} | {pct(c.bayes_alone, c.n)} | {pct(c.without_bayes, c.n)} | "
            f"{pct(c.content_tipped, c.n)} | {c.errors} |"
        )
    return "\n".join(lines)


def pooled(cells: dict[tuple[str, str], Cell], together: str = "every corpus together") -> str:
    """Each label over every corpus together: the issue's targets name labels, the table corpora."""
    lines = []
    for label in sorted({lab for _, lab in cells}):
        n = sum(c.n for (_, lab), c in cells.items() if lab == label)
        hit = sum(c.detected for (_, lab), c in cells.items() if lab == label)
        what = "false positives" if label == "ham" else "detected"
        lines.append(f"- {label}, {together}: {hit} of {n} = {pct(hit, n)} ({what})")
    return "\n".join(lines)


def language_table(rows: list[tuple[str, str, str, bool, bool]], columns: tuple[str, str], least: int = 10) -> str:
    """A markdown table per corpus, label and language (`mailmoat.classify.language`; "?" when too
    short or mixed to tell) of the share of messages meeting each of two conditions. `rows`: one
    (corpus, label, language, first, second) per message; cells under `least` messages are left out."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for corpus, label, lang, first, second in rows:
        row = counts[(corpus, label, lang or "?")]
        row[0] += 1
        row[1] += first
        row[2] += second
    lines = [
        f"| corpus | label | language | msgs | {columns[0]} | {columns[1]} |",
        "|---|---|---|---:|---:|---:|",
    ]
    for (corpus, label, lang), (n, a, b) in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[1][0])):
        if n >= least:
            lines.append(f"| {corpus} | {label} | {lang} | {n} | {pct(a, n)} | {pct(b, n)} |")
    return "\n".join(lines)


def detection_by_language(results: list[dict[str, Any]], quarantine: float) -> str:
    """How much each language's messages are detected, and held by the engines other than the classifier alone."""
    rows = []
    for r in results:
        v = r["orig"]
        bayes = sum(s for name, s, _ in v["findings"] if name in BAYES)
        rows.append((r["corpus"], r["label"], v.get("language", ""), v["action"] in DETECTED, v["score"] - bayes >= quarantine))
    return (
        "### By language (as received; quarantine or reject, and the engines other than the classifier alone)\n\n"
        + language_table(rows, ("quarantine or reject", "other engines alone ≥ quarantine"))
    )


def symbol_table(cells: dict[tuple[str, str], Cell], top: int = 12) -> str:
    lines = ["### Symbols that fired (share of test messages, positive score only)", ""]
    for (corpus, label), c in sorted(cells.items()):
        common = ", ".join(f"{name} {pct(k, c.n)}" for name, k in c.symbols.most_common(top))
        lines.append(f"- **{corpus}/{label}**: {common or '(none)'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = corpus_parser(__doc__)
    ap.add_argument("--limit", type=int, default=0, help="at most N messages per corpus/label (quick runs)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument(
        "--by-date", action="store_true",
        help="split each corpus and label by its Date headers: learn the older half, scan the newer half",
    )
    ap.add_argument("--json", type=Path, help="write every per-message result here")
    ap.add_argument(
        "--spam-full", type=float, help="classifier.spam_full for this run (default: the setting's default)"
    )
    ap.add_argument(
        "--dev",
        action="store_true",
        help="development mode: split the train halves again and report there; never reads the test halves",
    )
    ap.add_argument(
        "--within-train",
        action="store_true",
        help="the whole evaluation on the train halves alone: each is split again the same way (by date "
        "with --by-date), learnt and scanned; never reads the test halves",
    )
    ap.add_argument(
        "--unseen", nargs="+", type=Path, default=[], metavar="DIR",
        help="corpora (same layout) never learnt from: every message is scanned with the model of the train "
        "halves, as mail from elsewhere; reported as '<corpus> (unseen)'",
    )
    ap.add_argument(
        "--learn-releases", action="store_true",
        help="scan the test messages in Date order in one process, learning every quarantined ham as a release",
    )
    ap.add_argument(
        "--recall-share", type=float, default=0.0, metavar="P",
        help="with --learn-releases: each spam or phishing message delivered or only tagged is reported and "
        "recalled with probability P (fixed seed) and learnt as phishing at once",
    )
    ap.add_argument(
        "--learn-after", type=float, default=24.0, metavar="HOURS",
        help="with --learn-releases: a verdict is learnt once the mail scanned is dated this long after its message",
    )
    ap.add_argument("--show-misses", type=int, default=0, help="list up to N misclassified files per cell")
    ap.add_argument(
        "--also", nargs="+", type=Path, default=[], metavar="FILE",
        help="more messages to scan (as inbound) with the same trained model, listed one by one",
    )
    args = ap.parse_args(argv)
    if args.recall_share and not args.learn_releases:
        print("--recall-share goes with --learn-releases", file=sys.stderr)
        return 2

    from mailmoat.classify import BayesModel, Classifier, model_path
    from mailmoat.config import Settings

    sets = discover_or_say(args.corpus_dir)
    if not sets:
        return 2
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str, str]] = []
    dev_train: list[tuple[str, str, str]] = []
    for (corpus, label), files in sets.items():
        if args.limit:
            files = sorted(files)
            random.Random(args.seed).shuffle(files)
            files = files[: 2 * args.limit]
        tr, te = split(files, args.seed, args.by_date)
        if args.within_train:
            # What new checks are chosen with: the test half is set aside unread, and the train half
            # plays both parts (the older half of the older half learnt, with --by-date).
            files = tr
            tr, te = split(tr, args.seed, args.by_date)
        train += [(str(p), label) for p in tr]
        test += [(corpus, label, str(p)) for p in te]
        undated = sum(sent_at(p) is None for p in files) if args.by_date else 0
        kept = f" ({undated} without a readable Date, kept in the train half)" if undated else ""
        print(f"{corpus}/{label}: {len(tr)} train, {len(te)} test{kept}", file=sys.stderr)
        dev_train += [(corpus, label, str(p)) for p in tr]
    if args.dev:
        dev_report(dev_train, args.jobs, args.seed)
        return 0
    if args.unseen:
        more = unseen_items(args.unseen, args.limit, args.seed)
        if more is None:
            return 2
        test += more

    with tempfile.TemporaryDirectory(prefix="mailmoat-eval-") as data_dir:
        settings = Settings()
        settings.data_dir = data_dir
        t0 = time.monotonic()
        clf = Classifier(model_path(settings), BayesModel(), fresh=True)
        failed = learn_files(clf, train, args.jobs)
        clf.save()
        if not clf.model.nham or not clf.model.nspam:
            print(
                f"the train halves hold no {'ham' if not clf.model.nham else 'spam or phishing'}: the classifier "
                "learns nothing and says nothing (give a corpus with the other kind too: several directories "
                "may be named)",
                file=sys.stderr,
            )
        print(
            f"trained on {clf.model.nham} ham + {clf.model.nspam} spam/phish ({failed} unreadable), "
            f"{len(clf.model)} tokens, {time.monotonic() - t0:.0f}s",
            file=sys.stderr,
        )
        t0 = time.monotonic()
        results: list[dict[str, Any]] = []
        released = recalled = 0
        if args.learn_releases:
            results, released, recalled = scan_learning_releases(
                test, data_dir, args.spam_full, clf, args.recall_share, args.seed, args.learn_after * 3600.0
            )
        with ProcessPoolExecutor(
            args.jobs, initializer=_init_scan, initargs=(data_dir, args.spam_full)
        ) as pool:
            jobs = [] if args.learn_releases else test
            for i, r in enumerate(pool.map(_scan, jobs, chunksize=8), 1):
                results.append(r)
                if i % 500 == 0:
                    print(f"scanned {i}/{len(test)} ({time.monotonic() - t0:.0f}s)", file=sys.stderr)
            scan_s = time.monotonic() - t0
            also = list(pool.map(_scan, [("also", "", str(p)) for p in args.also]))

    quarantine = settings.policy.thresholds.quarantine
    orig = summarise(results, "orig", quarantine)
    rew = summarise(results, "rewritten", quarantine)
    th = settings.policy.thresholds
    full = args.spam_full if args.spam_full is not None else settings.classifier.spam_full
    print(
        f"## Detection on the {'train halves split again' if args.within_train else 'test halves'} "
        f"({'the newer half by Date' if args.by_date else f'seed {args.seed}'}, policy tag {th.tag:g} / quarantine {th.quarantine:g} / "
        f"reject {th.reject:g}, classifier.spam_full {full:g})\n"
    )
    if args.learn_releases:
        print(
            f"Scanned in Date order; {released} legitimate messages quarantined, released and learnt as ham on the way"
            + (f", and {recalled} spam and phishing messages let through, reported (share {args.recall_share:g}), "
               "recalled and learnt as phishing" if args.recall_share else "")
            + ".\n"
        )
    print(table(orig, "As received"))
    print()
    print(pooled({k: c for k, c in orig.items() if not k[0].endswith(UNSEEN)}))
    if any(k[0].endswith(UNSEEN) for k in orig):
        print(pooled({k: c for k, c in orig.items() if k[0].endswith(UNSEEN)}, "every unseen corpus together"))
    print()
    print(table(rew, f"Date and Received headers rewritten to {RECENT_DATE}"))
    print()
    changed = sum(c.changed for c in orig.values())
    print(f"Messages whose action changed after the date rewrite: {changed} of {len(results)}\n")
    print(detection_by_language(results, th.quarantine))
    print()
    print(symbol_table(orig))
    print()
    times = sorted(r["seconds"] for r in results)
    if times:
        print(
            f"Scan time per message (two scans: original + rewritten): median {times[len(times) // 2]:.3f}s, "
            f"p99 {times[int(len(times) * 0.99) - 1]:.3f}s; wall {scan_s:.0f}s with {args.jobs} processes"
        )
    if args.show_misses:
        print("\n### Misclassified test files (as received)\n")
        for (corpus, label), c in sorted(orig.items()):
            for p in c.misses[: args.show_misses]:
                r = next(x for x in results if x["path"] == p)
                top = sorted(r["orig"]["findings"], key=lambda f: -abs(f[1]))[:6]
                print(f"- {corpus}/{label} {Path(p).name}: {r['orig']['action']} {r['orig']['score']} {top}")
    if also:
        print("\n### The other messages given (`--also`), scanned as inbound with the same model\n")
        print("| file | action | score | classifier probability | strongest findings |")
        print("|---|---|---:|---:|---|")
        for r in also:
            o = r["orig"]
            strongest = ", ".join(f"{s} {sc:g}" for s, sc, _ in sorted(o["findings"], key=lambda f: -f[1])[:3] if sc > 0)
            prob = o["bayes_prob"]
            print(f"| {Path(r['path']).name} | {o['action']} | {o['score']:g} | {'-' if prob is None else f'{prob:.3f}'} | {strongest} |")
        held = sum(r["orig"]["action"] in DETECTED for r in also)
        print(f"\nHeld (quarantine or reject): {held} of {len(also)}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
