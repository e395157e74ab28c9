"""Attachment evaluation: which messages carry which true file types, and which attachment engines fire.

    .venv/bin/python bench/attachment_eval.py CORPUS_DIR [--jobs N] [--limit N] [--yara-dir DIR]
        [--clamd HOST:PORT|SOCKET] [--json out.json]

CORPUS_DIR holds `<corpus>/<label>/<one message per file>`. Every message is parsed and run through
the attachment analyzers only (file types, archives, Office, PDF, HTML/SVG, and YARA/ClamAV when
given). Attachments in real corpora are live malware: they are read as bytes by the engines and
never written out, opened by another program or executed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

ANALYZERS = ("filetypes", "archives", "office", "pdf", "htmlattach", "yara", "clamav")
_state: dict[str, Any] = {}


def _init(yara_dir: str, clamd: str) -> None:
    from mailmoat.analyzers.archives import ArchiveAnalyzer
    from mailmoat.analyzers.base import AnalyzerEnv
    from mailmoat.analyzers.clamav import ClamavAnalyzer
    from mailmoat.analyzers.filetypes import FileTypeAnalyzer
    from mailmoat.analyzers.htmlattach import HtmlAttachmentAnalyzer
    from mailmoat.analyzers.office import OfficeAnalyzer
    from mailmoat.analyzers.pdf import PdfAnalyzer
    from mailmoat.analyzers.yara import YaraAnalyzer
    from mailmoat.config import Settings

    settings = Settings()
    settings.attachments.yara_dir = yara_dir
    if clamd:
        settings.attachments.clamav.enabled = True
        settings.attachments.clamav.address = clamd
    env = AnalyzerEnv(settings=settings)
    classes = [FileTypeAnalyzer, ArchiveAnalyzer, OfficeAnalyzer, PdfAnalyzer, HtmlAttachmentAnalyzer, YaraAnalyzer, ClamavAnalyzer]
    _state["settings"] = settings
    _state["analyzers"] = [a for a in (c(env) for c in classes) if a.enabled()]


def _scan(path: str) -> dict[str, Any]:
    from mailmoat.analyzers.base import AnalysisContext
    from mailmoat.attach.scan import scan_message
    from mailmoat.model import Envelope
    from mailmoat.parse import parse

    raw = Path(path).read_bytes()
    t0 = time.perf_counter()
    msg = parse(raw)
    settings = _state["settings"]
    ctx = AnalysisContext(message=msg, envelope=Envelope("eval@example.org", ["rcpt@example.com"]), settings=settings,
                          deadline=time.monotonic() + 30)

    async def run() -> tuple[list[Any], Any]:
        out: list[Any] = []
        for a in _state["analyzers"]:
            try:
                out.extend(await asyncio.wait_for(a.analyze(ctx), 30))
            except Exception as exc:  # report, never stop the run
                out.append(type("F", (), {"symbol": f"CRASH:{a.name}:{type(exc).__name__}", "source": a.name})())
        return out, await scan_message(msg, settings.attachments, ctx.deadline)  # the analyzers' shared expansion

    findings, exp = asyncio.run(run())
    top = [f for f in exp.files if f.depth == 0]
    return {
        "seconds": time.perf_counter() - t0,
        "attachments": len(top),
        "types": sorted({f.ext or "unknown" for f in top}),
        "member_types": sorted({f.ext or "unknown" for f in exp.files if f.depth > 0}),
        "symbols": sorted({f.symbol for f in findings if f.symbol != "ATTACHMENT_HASHES"}),
        "engines": sorted({f.source for f in findings if f.symbol != "ATTACHMENT_HASHES"}),
        "urls_from_documents": sum(1 for u in msg.urls if u.source in ("pdf", "office")),
    }


def _files(root: Path, limit: int) -> list[tuple[str, str, str]]:
    out = []
    for corpus in sorted(p for p in root.iterdir() if p.is_dir()):
        for label_dir in sorted(p for p in corpus.iterdir() if p.is_dir()):
            files = sorted(p for p in label_dir.rglob("*") if p.is_file())
            if limit:
                files = files[:limit]
            out += [(corpus.name, label_dir.name, str(f)) for f in files]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus_dir", type=Path)
    ap.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--limit", type=int, default=0, help="messages per corpus/label (0 = all)")
    ap.add_argument("--yara-dir", default="")
    ap.add_argument("--clamd", default="")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    items = _files(args.corpus_dir, args.limit)
    t0 = time.perf_counter()
    stats: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {
        "messages": 0, "with_attachments": 0, "types": Counter(), "member_types": Counter(), "symbols": Counter(),
        "engines": Counter(), "flagged": 0, "doc_urls": 0, "seconds": 0.0, "max_seconds": 0.0,
    })
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(args.yara_dir, args.clamd)) as pool:
        for (corpus, label, _path), r in zip(items, pool.map(_scan, [p for _, _, p in items], chunksize=16), strict=True):
            s = stats[(corpus, label)]
            s["messages"] += 1
            s["seconds"] += r["seconds"]
            s["max_seconds"] = max(s["max_seconds"], r["seconds"])
            s["doc_urls"] += r["urls_from_documents"]
            if r["attachments"]:
                s["with_attachments"] += 1
            s["types"].update(r["types"])
            s["member_types"].update(r["member_types"])
            s["symbols"].update(r["symbols"])
            s["engines"].update(r["engines"])
            if r["symbols"]:
                s["flagged"] += 1
    wall = time.perf_counter() - t0
    print(f"# attachment evaluation: {len(items)} messages in {wall:.0f}s ({args.jobs} jobs)\n")
    print("| corpus | label | messages | with attachments | any attachment finding | URLs from documents | mean ms | max ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (corpus, label), s in sorted(stats.items()):
        n = s["messages"]
        print(f"| {corpus} | {label} | {n} | {s['with_attachments']} ({100 * s['with_attachments'] / n:.1f}%) | "
              f"{s['flagged']} ({100 * s['flagged'] / n:.1f}%) | {s['doc_urls']} | {1000 * s['seconds'] / n:.0f} | "
              f"{1000 * s['max_seconds']:.0f} |")
    for (corpus, label), s in sorted(stats.items()):
        if not s["with_attachments"]:
            continue
        print(f"\n**{corpus}/{label}** — messages by attachment true type: "
              + ", ".join(f"{t} {c}" for t, c in s["types"].most_common(15)))
        if s["member_types"]:
            print("  unpacked members: " + ", ".join(f"{t} {c}" for t, c in s["member_types"].most_common(10)))
        print("  engines fired (messages): " + (", ".join(f"{e} {c}" for e, c in s["engines"].most_common()) or "none"))
        print("  symbols (messages): " + (", ".join(f"{e} {c}" for e, c in s["symbols"].most_common(20)) or "none"))
    if args.json:
        args.json.write_text(json.dumps({f"{c}/{lb}": {k: (dict(v) if isinstance(v, Counter) else v) for k, v in s.items()}
                                         for (c, lb), s in stats.items()}, indent=2))


if __name__ == "__main__":
    main()
