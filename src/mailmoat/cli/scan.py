"""`mailmoat scan PATH...`: analyse .eml files or directories offline and print one verdict per message."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Generator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

from mailmoat.analyzers.classifier import no_model_note
from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, fail, load_settings
from mailmoat.config import Settings
from mailmoat.model import Direction, Envelope

FORMATS = ("text", "json", "jsonl")
_CHUNK = 8  # messages handed to a worker process at a time (amortises pickling without starving cores)


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """Files named on the command line, and every regular non-hidden file under named directories."""
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield p


class _Job:
    """One scanner per process, with its own event loop, reused for every message."""

    def __init__(self, settings: Settings, envelope: dict[str, Any]) -> None:
        from mailmoat.scanner import Scanner

        self.scanner = Scanner(settings)
        self.envelope = envelope
        self.loop = asyncio.new_event_loop()

    def run(self, path: str) -> dict[str, Any]:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            return {"path": path, "error": f"cannot read: {exc.strerror or exc}"}
        env = Envelope(
            mail_from=self.envelope["mail_from"],
            rcpt_tos=list(self.envelope["rcpt_tos"]),
            direction=Direction(self.envelope["direction"]),
            peer_ip=self.envelope["peer_ip"],
            size=len(raw),
            listener="scan",
        )
        try:
            result = self.loop.run_until_complete(self.scanner.scan(raw, env))
        except Exception as exc:  # the scanner should never raise; report it as an error line if it does
            return {"path": path, "error": f"scan failed: {type(exc).__name__}: {exc}"}
        v = result.verdict
        return {
            "path": path,
            "action": v.action.value,
            "score": round(v.score, 3),
            "symbols": {k: round(s, 3) for k, s in v.symbols.items()},
            "findings": [
                {"symbol": f.symbol, "score": round(f.score, 3), "evidence": f.evidence} for f in v.findings
            ],
            "reasons": list(v.reasons),
            "message_id": result.message.message_id,
            "subject": result.message.subject,
        }


_job: _Job | None = None


def _init_worker(settings: Settings, envelope: dict[str, Any]) -> None:
    global _job
    _job = _Job(settings, envelope)


def _run_in_worker(path: str) -> dict[str, Any]:
    assert _job is not None
    return _job.run(path)


def scan_paths(
    settings: Settings, files: Iterator[Path], envelope: dict[str, Any], workers: int
) -> Generator[dict[str, Any], None, None]:
    """One result dict per file, in input order; `workers` > 1 scans in that many processes."""
    names = (str(f) for f in files)
    if workers <= 1:
        job = _Job(settings, envelope)
        try:
            for name in names:
                yield job.run(name)
        finally:
            job.loop.close()
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(settings, envelope))
    try:
        yield from pool.map(_run_in_worker, names, chunksize=_CHUNK)
    finally:
        # When the reader stops early (closed pipe, error), do not scan the rest first.
        pool.shutdown(wait=True, cancel_futures=True)


def _text_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['path']}: ERROR {r['error']}"
    syms = " ".join(f"{k}({v:g})" for k, v in sorted(r["symbols"].items(), key=lambda kv: -kv[1]))
    head = f"{r['path']}: {r['action'].upper()} score={r['score']:g}" + (f" {syms}" if syms else "")
    if r["action"] == "deliver":
        return head
    return head + "".join(f"\n    {reason}" for reason in r["reasons"])


def register(app: typer.Typer) -> None:
    @app.command("scan")
    def scan(
        paths: Annotated[list[Path], typer.Argument(help=".eml files or directories (searched recursively)")],
        fmt: Annotated[str, typer.Option("--format", help="text, json or jsonl")] = "text",
        workers: Annotated[
            int, typer.Option("--workers", help="Processes to scan with (0 = one per CPU core)")
        ] = 1,
        direction: Annotated[
            str, typer.Option("--direction", help="inbound, internal or outbound")
        ] = "inbound",
        mail_from: Annotated[str, typer.Option("--mail-from", help="Envelope sender to assume")] = "",
        rcpt: Annotated[list[str] | None, typer.Option("--rcpt", help="Envelope recipient to assume")] = None,
        peer_ip: Annotated[str, typer.Option("--peer-ip", help="SMTP client IP to assume")] = "",
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Analyse messages without a server and print one verdict per message (works offline)."""
        if fmt not in FORMATS:
            raise fail(f"--format must be one of {', '.join(FORMATS)}")
        if direction not in {d.value for d in Direction}:
            raise fail("--direction must be inbound, internal or outbound")
        problems = [{"path": str(p), "error": "no such file or directory"} for p in paths if not p.exists()]
        # A directory without a message (a wrong path, an archive not unpacked) is an error too,
        # not an empty answer with exit 0 that reads as "nothing wrong found".
        problems += [{"path": str(p), "error": f"no messages found under {p}"}
                     for p in paths if p.is_dir() and next(iter_files([p]), None) is None]
        settings = load_settings(config, data_dir, db)
        note = no_model_note(settings)
        if note:
            typer.echo(note, err=True)  # once, here: worker processes would each say it
        n_workers = workers if workers > 0 else (os.cpu_count() or 1)
        envelope = {
            "mail_from": mail_from,
            "rcpt_tos": rcpt or [],
            "direction": direction,
            "peer_ip": peer_ip,
        }
        errors = 0
        collected: list[dict[str, Any]] = []
        out = sys.stdout
        for line in problems:
            errors += 1
            if fmt == "json":
                collected.append(line)
            else:
                out.write(
                    (json.dumps(line, ensure_ascii=False) if fmt == "jsonl" else _text_line(line)) + "\n"
                )
        results = scan_paths(settings, iter_files([p for p in paths if p.exists()]), envelope, n_workers)
        try:
            for r in results:
                errors += "error" in r
                if fmt == "json":
                    collected.append(r)
                elif fmt == "jsonl":
                    out.write(json.dumps(r, ensure_ascii=False) + "\n")
                else:
                    out.write(_text_line(r) + "\n")
                out.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:  # analyzer set-up (bad rules, duplicate symbols, bad policy) stops here
            raise fail(f"{type(exc).__name__}: {exc}") from exc
        finally:
            results.close()
        if fmt == "json":
            json.dump(collected, out, ensure_ascii=False, indent=2)
            out.write("\n")
        if errors:
            raise typer.Exit(1)
