"""What a fresh install holds: every engine but the statistical classifier, which has no model yet.

    .venv/bin/python bench/fresh_install_eval.py /path/to/corpora [-j N] [--half test|train] [--symbols A,B,...]
                                                 [--recalled SHARE] [--json FILE] [--unseen DIR ...]

The same corpora, split and scan as `bench/detection_eval.py`, but with no classifier model (and no
DNS): what an administrator gets on the day of installation, before `mailmoat train`. Prints, per
corpus and label, the share of messages at or above the tag and the quarantine lines of the default
policy, and the share on which each of the given symbols (default: the most frequent) fired.
`--half train` reads the train halves, which is what the rules and heuristics may be tuned on;
the test halves (default) are the figure to report.

`--recalled SHARE` (0 to 1) is the same install some time later, when its administrators have
recalled that share of the train halves' spam and phishing (drawn at random, the same each run) and
the gateway has learnt them from the store. That gives near-copy memory but still no statistical
model, which needs ham as well.

`--unseen DIR ...` adds corpora (same layout) scanned in full, reported as "<corpus> (unseen)": mail
nothing here was chosen on.

`--json FILE` writes every scanned message (corpus, label, path, action, score, findings, language):
with `--half train`, the dump new rules and weights are chosen with (which pairs of signs meet on
phishing stopped just under the quarantine line, and never on ham).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_eval as de  # the same discovery, split and scan


def _init(data_dir: str) -> None:
    de._init_scan(data_dir, None)


def _scan(path: str) -> tuple[str, dict[str, Any]]:
    return path, de._scan_one(Path(path).read_bytes())


def _learn_recalled(data_dir: str, paths: list[str], jobs: int) -> None:
    """Learn these messages as recalled phishing, as `train --from-store` does, into a fresh data dir."""
    from mailmoat.classify import Classifier, model_path
    from mailmoat.config import Settings

    settings = Settings()
    settings.data_dir = data_dir
    clf = Classifier.open(model_path(settings))
    de.learn_files(clf, [(p, "phish") for p in paths], jobs, keyed=True)
    clf.save()


def main(argv: list[str] | None = None) -> int:
    ap = de.corpus_parser(__doc__)
    ap.add_argument("--seed", type=int, default=de.SEED)
    ap.add_argument("--by-date", action="store_true", help="split by Date headers: the older half is train, the newer test")
    ap.add_argument("--half", choices=("test", "train"), default="test")
    ap.add_argument("--symbols", default="", help="comma-separated symbols to report (default: the 8 most frequent per cell)")
    ap.add_argument("--recalled", type=float, default=0.0, help="share of the train halves' spam and phishing recalled and learnt")
    ap.add_argument("--json", type=Path, help="write every scanned message's action, score and findings here")
    ap.add_argument("--unseen", nargs="+", type=Path, default=[], metavar="DIR",
                    help="corpora (same layout) to scan in full, as mail nothing was chosen on")
    args = ap.parse_args(argv)
    if args.recalled and args.half == "train":
        print("--recalled learns from the train halves: scan the test halves with it", file=sys.stderr)
        return 2

    sets = de.discover_or_say(args.corpus_dir)
    if not sets:
        return 2
    cell_of: dict[str, tuple[str, str]] = {}
    recalled: list[str] = []
    rng = random.Random(args.seed + 5)
    for cell, files in sorted(sets.items()):
        train, test = de.split(files, args.seed, args.by_date)
        for p in train if args.half == "train" else test:
            cell_of[str(p)] = cell
        if cell[1] != "ham":
            recalled += [str(p) for p in train if rng.random() < args.recalled]
    if args.unseen:
        unseen = de.unseen_items(args.unseen)
        if unseen is None:
            return 2
        cell_of.update({path: (corpus, label) for corpus, label, path in unseen})
    with tempfile.TemporaryDirectory() as data_dir:
        if recalled:
            _learn_recalled(data_dir, recalled, args.jobs)
        with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(data_dir,)) as pool:
            results = dict(pool.map(_scan, list(cell_of), chunksize=16))

    if args.json:
        dump = [{"corpus": cell_of[p][0], "label": cell_of[p][1], "path": p, **r} for p, r in sorted(results.items())]
        args.json.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")
    n: Counter[tuple[str, str]] = Counter()
    tag: Counter[tuple[str, str]] = Counter()
    held: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    fired: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for path, r in results.items():
        cell = cell_of[path]
        n[cell] += 1
        errors[cell] += r["action"] == "error"
        tag[cell] += r["action"] in ("tag", "quarantine", "reject")
        held[cell] += r["action"] in de.DETECTED
        for sym in {s for s, score, _ in r["findings"] if score > 0}:
            fired[cell][sym] += 1
    wanted = [s for s in args.symbols.split(",") if s]
    learnt = f", {len(recalled)} train-half spam and phishing recalled and learnt" if recalled else ""
    halves = f"{args.half} halves" + (" (split by Date: train older, test newer)" if args.by_date else "")
    print(f"## No classifier model, {halves}{learnt}\n")
    print("| corpus | label | msgs | tag or more | quarantine or reject | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for cell in sorted(n):
        print(f"| {cell[0]} | {cell[1]} | {n[cell]} | {de.pct(tag[cell], n[cell])} | {de.pct(held[cell], n[cell])} | {errors[cell]} |")
    rows = [
        (*cell_of[path], r.get("language", ""), r["action"] in ("tag", "quarantine", "reject"), r["action"] in de.DETECTED)
        for path, r in results.items()
    ]
    print("\nBy language (`mailmoat.classify.language`; at least 10 messages):\n")
    print(de.language_table(rows, ("tag or more", "quarantine or reject")))
    print("\nSymbols (share of messages, positive score only):\n")
    for cell in sorted(n):
        shown = [(s, fired[cell][s]) for s in wanted] if wanted else fired[cell].most_common(8)
        print(f"- **{cell[0]}/{cell[1]}**: " + ", ".join(f"{s} {de.pct(k, n[cell])}" for s, k in shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
