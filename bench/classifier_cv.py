"""The statistical classifier alone, by 5-fold cross-validation on the train halves of the corpora.

    .venv/bin/python bench/classifier_cv.py /path/to/corpora [-j N] [--max-clues N] [--no-cjk-grams]
                                            [--model bayes|logistic] [--only CORPUS ...]

Reads only the train halves of `bench/detection_eval.py`'s split (same seed), so every choice made
with it leaves the test halves unseen. Each train half is cut into 5 folds; the classifier is
trained on 4 and scores the fifth, five times, so every train message gets a probability from a
model that never saw it. Prints, per corpus and label, the share of messages at or above each
probability cut-off: for ham that is the false-positive rate a `classifier.spam_full` at that
cut-off would give, for spam and phish the detection. `--model logistic` is a baseline (AdaGrad
logistic regression on the same tokens) to compare the Bayes model's ranking against. `--only`
trains and scores the named corpora alone (e.g. `--only spamassassin`: how far the classifier
gets when the English mail is not pooled with the others).
"""

from __future__ import annotations

import math
import random
import sys
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same discovery and split

from mailmoat.classify import bayes
from mailmoat.classify.bayes import sigmoid

FOLDS = 5
CUTS = (0.5001, 0.6, 0.7, 0.8, 0.9, 0.95)


def _init(no_cjk_grams: bool) -> None:
    if no_cjk_grams:
        from mailmoat.classify import tokens

        tokens.MAX_GRAM_TEXT = 0
    de._init_train()


def _tokens(path: str) -> tuple[str, list[str] | None]:
    return de._tokens(path)


class Logistic:
    """Logistic regression on binary token features, AdaGrad, a few shuffled passes (a baseline)."""

    def __init__(self, epochs: int = 10, rate: float = 0.2) -> None:
        self.epochs, self.rate = epochs, rate
        self.data: list[tuple[list[str], float]] = []
        self.w: dict[str, float] = {}
        self.bias = 0.0

    def learn_tokens(self, tokens: Iterable[str], label: str) -> None:
        self.data.append((sorted(set(tokens)), 0.0 if label == "ham" else 1.0))

    def fit(self) -> None:
        rnd = random.Random(1)
        g2: dict[str, float] = {}
        for _ in range(self.epochs):
            rnd.shuffle(self.data)
            for toks, y in self.data:
                g = y - sigmoid(self.bias + sum(self.w.get(t, 0.0) for t in toks))
                if abs(g) < 1e-3:
                    continue
                for t in toks:
                    acc = g2[t] = g2.get(t, 1e-8) + g * g
                    self.w[t] = self.w.get(t, 0.0) + self.rate * g / math.sqrt(acc)
                self.bias += 0.01 * g

    def prob(self, tokens: Iterable[str]) -> float:
        return sigmoid(self.bias + sum(self.w.get(t, 0.0) for t in set(tokens)))


def folds_of(items: list[tuple[tuple[str, str], str]], seed: int) -> list[list[tuple[tuple[str, str], str]]]:
    """The train messages cut into FOLDS folds, always the same for the same seed."""
    order = sorted(items)
    random.Random(seed + 2).shuffle(order)
    return [order[k::FOLDS] for k in range(FOLDS)]


def cross_validate(
    items: list[tuple[tuple[str, str], str]], tokens: dict[str, list[str] | None], seed: int, model: str = "bayes"
) -> dict[str, float]:
    """Every message's probability from a model trained on the other folds (path -> probability)."""
    folds = folds_of(items, seed)
    out: dict[str, float] = {}
    for k in range(FOLDS):
        clf: Any = bayes.BayesModel() if model == "bayes" else Logistic()
        for j, fold in enumerate(folds):
            if j != k:
                for (_, label), path in fold:
                    toks = tokens[path]
                    if toks is not None:
                        clf.learn_tokens(toks, label)
        if model == "logistic":
            clf.fit()
        for _, path in folds[k]:
            toks = tokens[path]
            if toks is not None:
                out[path] = clf.classify_tokens(toks).prob if model == "bayes" else clf.prob(toks)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--seed", type=int, default=de.SEED)
    ap.add_argument("--by-date", action="store_true", help="the train halves of detection_eval.py --by-date (the older mail)")
    ap.add_argument("--max-clues", type=int, help="bayes.MAX_CLUES for this run (default: the shipped value)")
    ap.add_argument("--no-cjk-grams", action="store_true", help="leave out the CJK 4-gram tokens")
    ap.add_argument("--model", choices=("bayes", "logistic"), default="bayes")
    ap.add_argument("--only", nargs="+", metavar="CORPUS", help="use only these corpora (directory names)")
    args = ap.parse_args(argv)

    if args.max_clues:
        bayes.MAX_CLUES = args.max_clues
    sets = de.discover_or_say(args.corpus_dir)
    if args.only:
        sets = {cell: files for cell, files in sets.items() if cell[0] in args.only}
        if not sets:
            print(f"none of {', '.join(args.only)} under {' or '.join(map(str, args.corpus_dir))}", file=sys.stderr)
    if not sets:
        return 2
    items = de.train_items(sets, args.seed, args.by_date)
    tokens: dict[str, list[str] | None] = {}
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(args.no_cjk_grams,)) as pool:
        for path, toks in pool.map(_tokens, [p for _, p in items], chunksize=32):
            tokens[path] = toks
    prob = cross_validate(items, tokens, args.seed, args.model)
    probs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cell, path in items:
        if path in prob:
            probs[cell].append(prob[path])
    print(
        f"## {args.model}, {FOLDS}-fold cross-validation on the train halves (max clues {bayes.MAX_CLUES}, "
        f"CJK 4-grams {'off' if args.no_cjk_grams else 'on'}"
        + (f", only {', '.join(args.only)}" if args.only else "")
        + ")\n"
    )
    print("| corpus | label | msgs | " + " | ".join(f"p ≥ {c:g}" for c in CUTS) + " |")
    print("|---|---|---:|" + "---:|" * len(CUTS))
    for (corpus, label), ps in sorted(probs.items()):
        row = " | ".join(de.pct(sum(p >= c for p in ps), len(ps)) for c in CUTS)
        print(f"| {corpus} | {label} | {len(ps)} | {row} |")
    failed = sum(t is None for t in tokens.values())
    if failed:
        print(f"\n{failed} messages could not be tokenised", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
