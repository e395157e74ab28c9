"""Hit rates of the rule-like engines (urls, impersonation, intel, auth) per corpus and label.

Usage: .venv/bin/python bench/engines_eval.py CORPUS_DIR [CORPUS_DIR ...] [--limit N] [--domain D]

Each CORPUS_DIR holds <label>/<message files> (ham, spam, phish). Runs parse plus only these
analyzers (no DNS: authentication is "not checked"; no intel lists unless --intel DIR), and
prints, per corpus and label, the share of messages whose score from these engines reaches
the tag (5) and quarantine (10) thresholds, and the symbols that fire most.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.analyzers.impersonation import ImpersonationAnalyzer
from mailmoat.analyzers.intel import IntelAnalyzer
from mailmoat.analyzers.urls import UrlAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Envelope
from mailmoat.parse import parse


async def run(args: argparse.Namespace) -> None:
    s = Settings()
    s.server.domains = args.domain
    s.intel.dirs = args.intel
    env = AnalyzerEnv(settings=s)
    analyzers: list[BaseAnalyzer] = [UrlAnalyzer(env), ImpersonationAnalyzer(env)]
    if args.intel:
        analyzers.append(IntelAnalyzer(env))
    for corpus in args.corpora:
        for label_dir in sorted(p for p in Path(corpus).iterdir() if p.is_dir()):
            files = sorted(p for p in label_dir.iterdir() if p.is_file())[: args.limit]
            if not files:
                continue
            tag = quar = 0
            syms: Counter[str] = Counter()
            examples: dict[str, str] = {}
            t0 = time.perf_counter()
            for f in files:
                msg = parse(f.read_bytes())
                envelope = Envelope(mail_from=msg.from_.addr, rcpt_tos=["user@" + s.server.domains[0]], peer_ip="198.51.100.1")
                ctx = AnalysisContext(message=msg, envelope=envelope, settings=s)
                score = 0.0
                for a in analyzers:
                    for finding in await a.analyze(ctx):
                        score += finding.score
                        syms[finding.symbol] += 1
                        examples.setdefault(finding.symbol, f"{f.name}: {finding.evidence[:160]}")
                tag += score >= s.policy.thresholds.tag
                quar += score >= s.policy.thresholds.quarantine
            dt = time.perf_counter() - t0
            n = len(files)
            print(f"\n{Path(corpus).name}/{label_dir.name}: {n} messages, {1000 * dt / n:.1f} ms/message (parse + engines)")
            print(f"  score >= tag: {100 * tag / n:.1f}%   score >= quarantine: {100 * quar / n:.1f}%")
            for sym, c in syms.most_common(args.top):
                print(f"  {sym:32s} {100 * c / n:5.1f}%   e.g. {examples[sym]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--limit", type=int, default=500, help="messages per label (default 500)")
    ap.add_argument("--domain", action="append", default=[], help="protected domain (repeatable)")
    ap.add_argument("--intel", action="append", default=[], help="indicator directory (repeatable)")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    args.domain = args.domain or ["example-org.cn"]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
