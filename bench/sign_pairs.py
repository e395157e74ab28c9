"""Pairs of signs that meet on spam or phishing stopped just under the quarantine line, and never on ham.

    .venv/bin/python bench/fresh_install_eval.py ../shared/corpora -j 2 --half train --json train.json
    .venv/bin/python bench/sign_pairs.py train.json [--also legit.json] [--low 7] [--least 8] [--top 30]

Reads the dump `fresh_install_eval.py --json` writes (train halves: what rules may be chosen with)
and lists, for every pair of symbols that fired (positive score; the content heuristics left out,
being capped as a group), how many phishing and spam messages scored between `--low` and the
quarantine line with both, how many such messages carry the pair at all, and how many ham messages
do. Only pairs on no ham are listed. A pair is a candidate for a rule only when the two signs have
a reason to belong together; an absence in old ham says little about today's mail.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

QUARANTINE = 10.0


def pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    names = sorted({f[0] for f in row["findings"] if f[1] > 0 and not f[0].startswith("CONTENT_")})
    return list(itertools.combinations(names, 2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("dump", type=Path, help="fresh_install_eval.py --json output")
    ap.add_argument("--also", type=Path, action="append", default=[], help="more dumps whose messages all count as ham")
    ap.add_argument("--low", type=float, default=7.0, help="lowest score counted as stopped just under the line")
    ap.add_argument("--least", type=int, default=8, help="list pairs on at least this many such messages")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)

    rows = json.loads(args.dump.read_text(encoding="utf-8"))
    ham_rows = [r for r in rows if r["label"] == "ham"]
    for extra in args.also:
        ham_rows += json.loads(extra.read_text(encoding="utf-8"))
    on_ham: Counter[tuple[str, str]] = Counter(p for r in ham_rows for p in pairs(r))
    near: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    for r in rows:
        if r["label"] == "ham":
            continue
        for p in pairs(r):
            total[p] += 1
            near[p] += args.low <= r["score"] < QUARANTINE
    found = sorted(((near[p], total[p], p) for p in near if near[p] >= args.least and not on_ham[p]), reverse=True)
    print(f"| pair | spam and phishing at {args.low:g}–{QUARANTINE:g} | with the pair in all | ham |")
    print("|---|---:|---:|---:|")
    for n, t, (a, b) in found[: args.top]:
        print(f"| {a} + {b} | {n} | {t} | 0 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
