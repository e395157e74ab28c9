"""How much spam a learned combination of every engine could catch within the ham false-positive budget.

    .venv/bin/python bench/detection_ceiling.py /path/to/corpora [-j N] [--budget CORPUS=PCT ...]

Reads only the train halves of `bench/detection_eval.py`'s split (same seed). Every message gets
a classifier probability by the 5-fold cross-validation of `bench/classifier_cv.py`, and is
scanned once by the full `Scanner` with no classifier model, which gives the findings of every
other engine. Four rankings are then compared:

- the default policy: the scan's score plus the `BAYES_SPAM` / `BAYES_HAM` points the classifier
  analyzer would add for that probability;
- the classifier's probability alone;
- a logistic regression (L2, 5-fold cross-validated) over the classifier's log-odds and the
  presence of every other symbol: the best any re-weighting of the existing engines could do;
- the same plus signs of how the mail reached the reader: list headers, a reply (In-Reply-To or
  References), quoted text, the number of recipients, Sender and Reply-To present.

The first row is the default policy as it stands: detected when the score reaches the quarantine
threshold. For each other row the cut-off is the lowest that keeps every ham cell within its budget (by
default 0.5 % for spamassassin, 1 % for trec06c_subset, the issue's targets for English and
Chinese ham); the table gives the spam and phishing detected at that cut-off. This answers
"could the weights be better?", not "is the mail detected": the default policy's real figures
are in `bench/detection_eval.py`.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classifier_cv  # the same folds
import detection_eval as de  # the same discovery, split and scan

from mailmoat.classify.bayes import sigmoid

FOLDS = classifier_cv.FOLDS
DEFAULT_BUDGET = {"spamassassin": 0.5, "trec06c_subset": 1.0}
_RE_SUBJECT = re.compile(r"(?:re|aw|sv|回复|答复)\s*[:：]", re.IGNORECASE)


def _init(data_dir: str) -> None:
    de._init_train()
    de._init_scan(data_dir, None)


def _structure(m: Any) -> list[str]:
    """How the mail reached the reader (not when, nor with what software)."""
    names = {k.lower() for k, _ in m.headers}
    out = [f"list:{k.lower()}" for k in m.list_headers]
    if "in-reply-to" in names or "references" in names:
        out.append("reply")
    if _RE_SUBJECT.match(m.subject.strip()):
        out.append("re-subject")
    lines = [line for line in m.text.splitlines() if line.strip()]
    if lines and sum(line.lstrip().startswith(">") for line in lines) * 10 > len(lines):
        out.append("quoted")
    n = len(m.to) + len(m.cc)
    out.append("rcpt:" + ("0" if n == 0 else "1" if n == 1 else "2-4" if n < 5 else "5+"))
    if m.sender is not None:
        out.append("sender")
    if m.reply_to:
        out.append("reply-to")
    return out


def _examine(path: str) -> tuple[str, list[str] | None, dict[str, Any], list[str]]:
    """The classifier's tokens, how the mail arrived, and the scan without a model: one parse for the first two."""
    from mailmoat.classify import message_tokens
    from mailmoat.parse import parse

    raw = Path(path).read_bytes()
    try:
        msg = parse(raw, qr=de._state["qr"])
        tokens: list[str] | None = sorted(message_tokens(msg))
        structure = _structure(msg)
    except Exception:
        tokens, structure = None, []
    return path, tokens, de._scan_one(raw), structure


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class Logistic:
    """L2 logistic regression on one real feature plus sparse binary ones, full-batch AdaGrad."""

    def __init__(self, l2: float = 1e-3, steps: int = 400, rate: float = 0.3) -> None:
        self.l2, self.steps, self.rate = l2, steps, rate
        self.w: dict[str, float] = {}
        self.a = 0.0  # weight of the classifier's log-odds
        self.bias = 0.0

    def score(self, x: float, feats: list[str]) -> float:
        return self.bias + self.a * x + sum(self.w.get(f, 0.0) for f in feats)

    def fit(self, data: list[tuple[float, list[str], int]]) -> None:
        g2: dict[str, float] = defaultdict(lambda: 1e-8)
        n = len(data)
        for _ in range(self.steps):
            grad: dict[str, float] = defaultdict(float)
            for x, feats, y in data:
                g = sigmoid(self.score(x, feats)) - y
                grad["\0a"] += g * x
                grad["\0b"] += g
                for f in feats:
                    grad[f] += g
            for key, g in grad.items():
                g = g / n
                if key == "\0b":
                    g2[key] += g * g
                    self.bias -= self.rate * g / math.sqrt(g2[key])
                    continue
                cur = self.a if key == "\0a" else self.w.get(key, 0.0)
                g += self.l2 * cur
                g2[key] += g * g
                cur -= self.rate * g / math.sqrt(g2[key])
                if key == "\0a":
                    self.a = cur
                else:
                    self.w[key] = cur


def _cut(scores: dict[str, float], cell_of: dict[str, tuple[str, str]], budget: dict[str, float]) -> float:
    """The lowest cut-off (score >= cut is detected) that keeps every ham cell within its budget."""
    cut = -math.inf
    by: dict[str, list[float]] = defaultdict(list)
    for path, s in scores.items():
        corpus, label = cell_of[path]
        if label == "ham":
            by[corpus].append(s)
    for corpus, vals in by.items():
        allowed = int(len(vals) * budget.get(corpus, 0.5) / 100)
        vals.sort(reverse=True)
        if allowed < len(vals):
            # Above the (allowed+1)-th highest ham score; ties at it count as detected, so step past it.
            cut = max(cut, math.nextafter(vals[allowed], math.inf))
    return cut


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--seed", type=int, default=de.SEED)
    ap.add_argument("--budget", action="append", default=[], metavar="CORPUS=PCT",
                    help="ham false-positive budget for a corpus, in percent (repeatable)")
    args = ap.parse_args(argv)
    budget = dict(DEFAULT_BUDGET)
    for item in args.budget:
        corpus, _, pct = item.partition("=")
        budget[corpus] = float(pct)

    from mailmoat.analyzers.classifier import (
        BAYES_HAM,
        BAYES_SPAM,
        HAM_FROM,
        HAM_FULL,
        SPAM_FROM,
        SPAM_FULL,
        scale,
    )

    sets = de.discover_or_say(args.corpus_dir)
    if not sets:
        return 2
    items = de.train_items(sets, args.seed)
    cell_of = {path: cell for cell, path in items}
    tokens: dict[str, list[str] | None] = {}
    scans: dict[str, dict[str, Any]] = {}
    structure: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as empty, ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(empty,)) as pool:
        for path, toks, scan, struct in pool.map(_examine, [p for _, p in items], chunksize=16):
            tokens[path], scans[path], structure[path] = toks, scan, struct

    # The classifier's probability for every message, from a model that never saw it.
    folds = classifier_cv.folds_of(items, args.seed)
    by_cv = classifier_cv.cross_validate(items, tokens, args.seed)
    prob = {path: by_cv.get(path, 0.5) for _, path in items}
    paths = [p for _, p in items if scans[p]["action"] != "error"]

    def policy(path: str) -> float:
        p = prob[path]
        bayes_pts = 0.0
        if p >= SPAM_FROM:
            bayes_pts = BAYES_SPAM.score * scale(p, SPAM_FROM, SPAM_FULL)
        elif p <= HAM_FROM:
            bayes_pts = BAYES_HAM.score * scale(p, HAM_FROM, HAM_FULL)
        return float(scans[path]["score"]) + bayes_pts

    def symbols(path: str) -> list[str]:
        return sorted({f"sym:{s}" for s, _, _ in scans[path]["findings"]})

    def stacked(with_structure: bool) -> dict[str, float]:
        rows = {p: (_logit(prob[p]), symbols(p) + (structure[p] if with_structure else [])) for p in paths}
        out: dict[str, float] = {}
        for k in range(FOLDS):
            held = {p for _, p in folds[k]}
            clf = Logistic()
            clf.fit([(x, f, int(cell_of[p][1] != "ham")) for p, (x, f) in rows.items() if p not in held])
            out.update({p: clf.score(*rows[p]) for p in rows if p in held})
        return out

    rankings = {
        "default policy (score + BAYES points)": {p: policy(p) for p in paths},
        "classifier probability alone": {p: prob[p] for p in paths},
        "learned weights: classifier + every symbol": stacked(False),
        "learned weights: + how the mail arrived": stacked(True),
    }
    cells = sorted({cell_of[p] for p in paths})
    budgets = ", ".join(f"{c} {budget.get(c, 0.5):g} %" for c in sorted({c for c, lbl in cells if lbl == "ham"}))
    print(f"## Train halves, {FOLDS}-fold cross-validation; below the first row, at the ham budget ({budgets})\n")
    print("| ranking | " + " | ".join(f"{c} {lbl}" for c, lbl in cells) + " |")
    print("|---|" + "---:|" * len(cells))
    from mailmoat.config import Settings

    quarantine = Settings().policy.thresholds.quarantine
    rows: list[tuple[str, dict[str, float], float]] = [
        (f"default policy, score ≥ {quarantine:g} (quarantine)", rankings["default policy (score + BAYES points)"], quarantine)
    ]
    rows += [(name, scores, _cut(scores, cell_of, budget)) for name, scores in rankings.items()]
    for name, scores, cut in rows:
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        for p, s in scores.items():
            by[cell_of[p]].append(s)
        print(f"| {name} | " + " | ".join(de.pct(sum(s >= cut for s in by[c]), len(by[c])) for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
