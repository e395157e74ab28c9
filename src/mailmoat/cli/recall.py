"""`mailmoat recall plan|run|approve|status|restore|list` and `mailmoat rescan`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mailmoat.cli.common import (
    MAX_LIMIT,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    actor,
    fail,
    load_settings,
    open_store,
    output_console,
)
from mailmoat.config import Settings
from mailmoat.recall.engine import RecallEngine, RecallError
from mailmoat.recall.selection import SelectionError, Selector

recall_app = typer.Typer(help="Recall delivered copies from every mailbox and folder, silently; restore them.", no_args_is_help=True)
console = output_console()
err = Console(stderr=True)  # progress bars only

Opt = typer.Option
TrackingOpt = Annotated[str, Opt("--tracking-id", help="X-Mailmoat-Id of one copy, or a message id for all its copies")]
MsgIdOpt = Annotated[str, Opt("--message-id", help="Message-ID header")]
SenderOpt = Annotated[str, Opt("--sender", help="Sender address or domain (envelope or From)")]
RcptOpt = Annotated[str, Opt("--rcpt", help="One recipient only")]
SubjectOpt = Annotated[str, Opt("--subject", help="Subject contains (case-insensitive)")]
UrlOpt = Annotated[str, Opt("--url", help="A recorded URL contains")]
UrlDomainOpt = Annotated[str, Opt("--url-domain", help="Registrable domain, host, or page on a shared host (forms.gle/Xy7Q2) of a recorded URL")]
ShaOpt = Annotated[str, Opt("--sha256", help="Attachment SHA-256")]
QrOpt = Annotated[str, Opt("--qr", help="Decoded QR payload contains")]
ActionOpt = Annotated[str, Opt("--action", help="Verdict action (deliver, tag, quarantine ...)")]
SymbolOpt = Annotated[str, Opt("--symbol", help="A symbol the message raised")]
NotSymbolOpt = Annotated[str, Opt("--not-symbol", help="Leave out messages that raised this symbol (e.g. STAFF_REPORT)")]
DirectionOpt = Annotated[str, Opt("--direction", help="inbound, internal or outbound")]
SinceOpt = Annotated[str, Opt("--since", help="3d, 12h, or an ISO date")]
UntilOpt = Annotated[str, Opt("--until", help="3d, 12h, or an ISO date")]
FmtOpt = Annotated[str, Opt("--format", help="text or json")]
ReasonOpt = Annotated[str, Opt("--reason", help="Why (kept in the job and the audit log)")]


def _engine(settings: Settings) -> RecallEngine:
    # Every recall command works on recorded mail: a mistyped --data-dir is an error, not a new store.
    return RecallEngine(settings, open_store(settings))


def _selector(**kw: str) -> Selector:
    sel = Selector(
        tracking_id=kw["tracking_id"], message_id=kw["message_id"], sender=kw["sender"], recipient=kw["rcpt"],
        subject=kw["subject"], url=kw["url"], url_domain=kw["url_domain"], sha256=kw["sha256"], qr=kw["qr"],
        action=kw["action"], symbol=kw["symbol"], direction=kw["direction"], since=kw["since"], until=kw["until"],
        not_symbol=kw["not_symbol"],
    )
    if sel.is_empty():
        raise fail("name at least one selector (--message-id, --sender, --subject, --url-domain, --sha256, --qr, ...)")
    return sel


def _print_status(st: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        typer.echo(json.dumps(st, ensure_ascii=False, indent=2))
        return
    console.print(f"job {st['id']}  state={st['state']}  backend={st['backend']}  mode={st['mode']}")
    counts = st.get("counts", {})
    summary = Table(title="copies by state")
    summary.add_column("state")
    summary.add_column("copies", justify="right")
    for k in sorted(counts):
        summary.add_row(k, str(counts[k]))
    console.print(summary)
    failed = [c for c in st.get("copies", []) if c["state"] == "failed"]
    if failed:
        t = Table(title="failed copies")
        for col in ("recipient", "tracking id", "attempts", "reason"):
            t.add_column(col)
        for c in failed[:50]:
            t.add_row(c["recipient"], c["tracking_id"], str(c["attempts"]), c["reason"])
        console.print(t)
    if st.get("follow_ups"):
        console.print(f"the rest of its campaign, recalled by its follow-up: jobs {', '.join(j['id'] + ' (' + j['state'] + ')' for j in st['follow_ups'])}")
    if st.get("follow_up_restored"):
        console.print(f"restored too, the rest of its campaign that its follow-up recalled: jobs {', '.join(st['follow_up_restored'])}")


def _print_preview(preview: dict[str, Any], fmt: str, job_id: str = "") -> None:
    if fmt == "json":
        out = dict(preview)
        if job_id:
            out["job_id"] = job_id
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    console.print(
        f"{preview['copies']} copies of {preview['messages']} message(s) "
        f"in {len(preview['mailboxes'])} mailbox(es)"
    )
    for subj in preview["subjects"][:5]:
        console.print(f"  subject: {subj}")
    shown = preview["recipients"][:10]
    more = len(preview["recipients"]) - len(shown)
    console.print("  recipients: " + ", ".join(shown) + (f" … and {more} more" if more > 0 else ""))
    if job_id:
        console.print(f"planned job {job_id}")


_SETTLED = {"done", "failed", "restored", "awaiting_approval"}


async def _run_with_progress(engine: RecallEngine, job_id: str, fmt: str) -> dict[str, Any]:
    from mailmoat.tasks.app import uses_queue

    queued = uses_queue(engine.settings)
    if fmt == "json" and not queued:
        return await engine.run(job_id, actor(), source="cli")
    with Progress(
        TextColumn("recall"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=fmt == "json"
    ) as bar:
        task = bar.add_task("recall", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if not queued:
            return await engine.run(job_id, actor(), progress=on_progress, source="cli")
        # Several nodes: the task workers carry the job; follow it until it settles.
        st = await engine.dispatch(job_id, actor(), source="cli")
        while st["state"] not in _SETTLED:
            await asyncio.sleep(0.5)
            st = engine.status(job_id, with_copies=False)
            counts = st["counts"]
            on_progress(sum(v for k, v in counts.items() if k not in ("pending", "working")), sum(counts.values()))
        return engine.status(job_id)


@recall_app.command("plan")
def plan_cmd(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    tracking_id: TrackingOpt = "", message_id: MsgIdOpt = "", sender: SenderOpt = "", rcpt: RcptOpt = "",
    subject: SubjectOpt = "", url: UrlOpt = "", url_domain: UrlDomainOpt = "", sha256: ShaOpt = "", qr: QrOpt = "",
    action: ActionOpt = "", symbol: SymbolOpt = "", not_symbol: NotSymbolOpt = "", direction: DirectionOpt = "",
    since: SinceOpt = "", until: UntilOpt = "", reason: ReasonOpt = "", fmt: FmtOpt = "text",
    dry_run: Annotated[bool, Opt("--dry-run", help="Only print what would be recalled")] = False,
) -> None:
    """Print what a recall would touch, and store it as a planned job (unless --dry-run)."""
    settings = load_settings(config, data_dir, db)
    sel = _selector(**locals_sel(locals()))
    engine = _engine(settings)
    try:
        preview = engine.preview(sel).to_dict()
        job_id = "" if dry_run else engine.plan(sel, actor(), reason, source="cli")
    except (SelectionError, RecallError) as exc:
        raise fail(str(exc)) from exc
    _print_preview(preview, fmt, job_id)


def locals_sel(values: dict[str, Any]) -> dict[str, str]:
    keys = ("tracking_id", "message_id", "sender", "rcpt", "subject", "url", "url_domain", "sha256", "qr",
            "action", "symbol", "not_symbol", "direction", "since", "until")
    return {k: str(values.get(k) or "") for k in keys}


@recall_app.command("run")
def run_cmd(
    job_id: Annotated[str, typer.Argument(help="A planned job; or give selectors to plan and run at once")] = "",
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    tracking_id: TrackingOpt = "", message_id: MsgIdOpt = "", sender: SenderOpt = "", rcpt: RcptOpt = "",
    subject: SubjectOpt = "", url: UrlOpt = "", url_domain: UrlDomainOpt = "", sha256: ShaOpt = "", qr: QrOpt = "",
    action: ActionOpt = "", symbol: SymbolOpt = "", not_symbol: NotSymbolOpt = "", direction: DirectionOpt = "",
    since: SinceOpt = "", until: UntilOpt = "", reason: ReasonOpt = "", fmt: FmtOpt = "text",
    yes: Annotated[bool, Opt("--yes", "-y", help="Do not ask for confirmation")] = False,
    dry_run: Annotated[bool, Opt("--dry-run", help="Only print what would be recalled")] = False,
) -> None:
    """Recall every copy: run a planned job, or plan from selectors and run it (one action)."""
    settings = load_settings(config, data_dir, db)
    engine = _engine(settings)
    try:
        if not job_id:
            sel = _selector(**locals_sel(locals()))
            preview = engine.preview(sel).to_dict()
            if dry_run or fmt != "json":
                _print_preview(preview, fmt)
            if dry_run:
                return
            if preview["copies"] == 0:
                raise fail("nothing to recall: no delivered copy matches", code=1)
            if not yes and not typer.confirm(f"Recall {preview['copies']} copies?", default=False):
                raise typer.Exit(1)
            job_id = engine.plan(sel, actor(), reason, source="cli")
        elif dry_run:
            _print_status(engine.status(job_id), fmt)
            return
        st = asyncio.run(_run_with_progress(engine, job_id, fmt))
    except (SelectionError, RecallError) as exc:
        raise fail(str(exc)) from exc
    finally:
        asyncio.run(engine.close())
    _print_status(st, fmt)
    if st["state"] == "failed":
        raise typer.Exit(1)


@recall_app.command("approve")
def approve_cmd(job_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
    """Approve a job that waits for approval (it then runs with `recall run JOB`)."""
    settings = load_settings(config, data_dir, db)
    try:
        _engine(settings).approve(job_id, actor(), source="cli")
    except RecallError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"approved {job_id}")


@recall_app.command("status")
def status_cmd(
    job_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FmtOpt = "text"
) -> None:
    """State of a job and of each copy."""
    settings = load_settings(config, data_dir, db)
    try:
        _print_status(_engine(settings).status(job_id), fmt)
    except RecallError as exc:
        raise fail(str(exc)) from exc


@recall_app.command("restore")
def restore_cmd(
    job_id: str,
    copy: Annotated[list[str] | None, Opt("--copy", help="Tracking id of one copy (repeatable); default all")] = None,
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FmtOpt = "text",
) -> None:
    """Put recalled copies back into their folders with their flags and dates."""
    settings = load_settings(config, data_dir, db)
    engine = _engine(settings)
    try:
        st = asyncio.run(engine.restore(job_id, actor(), tracking_ids=copy or None, source="cli"))
    except RecallError as exc:
        raise fail(str(exc)) from exc
    _print_status(st, fmt)


@recall_app.command("list")
def list_cmd(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FmtOpt = "text",
    limit: Annotated[int, Opt("--limit", min=1, max=MAX_LIMIT)] = 50,
) -> None:
    """Recent recall jobs."""
    settings = load_settings(config, data_dir, db)
    jobs = _engine(settings).list_jobs(limit)
    if fmt == "json":
        typer.echo(json.dumps(jobs, ensure_ascii=False, indent=2))
        return
    t = Table(title="recall jobs")
    for col in ("id", "state", "trigger", "created by", "copies", "reason"):
        t.add_column(col)
    for j in jobs:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(j["counts"].items()))
        t.add_row(j["id"], j["state"], j["trigger"], j["created_by"], counts, j["reason"])
    console.print(t)


@recall_app.command("condemn")
def condemn_cmd(
    mail_id: Annotated[str, typer.Argument(help="Recorded message id (as shown by `mailmoat trace`)")],
    reason: ReasonOpt = "", config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    fmt: FmtOpt = "text",
) -> None:
    """Mark a delivered message as a threat: its copies are recalled by the automatic-recall policy."""
    from mailmoat.recall.auto import condemn_message

    settings = load_settings(config, data_dir, db)
    engine = _engine(settings)
    try:
        outcome = asyncio.run(condemn_message(engine, mail_id, actor(), reason))
    except (ValueError, RecallError) as exc:
        raise fail(str(exc)) from exc
    out = {"job_id": outcome.job_id, "state": outcome.state, "copies": outcome.copies, "counts": outcome.detail}
    if fmt == "json":
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        console.print(f"{mail_id}: recall {outcome.state} ({outcome.copies} copies){' job ' + outcome.job_id if outcome.job_id else ''}")


@recall_app.command("uncondemn")
def uncondemn_cmd(
    mail_id: Annotated[str, typer.Argument(help="Recorded message id (as shown by `mailmoat trace`)")],
    reason: ReasonOpt = "", config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    fmt: FmtOpt = "text",
) -> None:
    """Take back the mark of a message as a threat (its links stop condemning other mail); its recall stays."""
    from mailmoat.recall.auto import uncondemn_message

    settings = load_settings(config, data_dir, db)
    store = open_store(settings)
    try:
        jobs = uncondemn_message(settings, store, mail_id, actor(), reason, source="cli")
        row = store.get_message(mail_id)
        status = row.status if row else ""
    except ValueError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps({"mail_id": mail_id, "status": status, "recall_jobs": jobs}))
        return
    console.print(f"{mail_id}: no longer marked as a threat (now {status})")
    for job in jobs:
        console.print(f"its copies stay recalled by job {job}: mailmoat recall restore {job}")


def rescan_cmd(
    since: Annotated[str, Opt("--since", help="Re-scan mail received since (3d, 12h, ISO date)")] = "3d",
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FmtOpt = "text",
) -> None:
    """Re-scan retained mail with current rules and indicators; recall delivered mail now judged a threat."""
    from mailmoat.recall.rescan import rescan
    from mailmoat.scanner import Scanner

    settings = load_settings(config, data_dir, db)
    store = open_store(settings)
    engine = RecallEngine(settings, store)
    scanner = Scanner(settings, store=store)
    try:
        report = asyncio.run(rescan(engine, scanner, since, actor=actor()))
    except SelectionError as exc:
        raise fail(str(exc)) from exc
    out = {
        "scanned": report.scanned, "changed": report.changed, "newly_condemned": report.newly_condemned,
        "missing_raw": report.missing_raw,
        "recalls": [{"job_id": r.job_id, "state": r.state, "copies": r.copies} for r in report.recalls],
    }
    if fmt == "json":
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        console.print(
            f"re-scanned {report.scanned}, verdict changed for {report.changed}, newly condemned "
            f"{len(report.newly_condemned)}, recall jobs {len(report.recalls)}, raw missing {report.missing_raw}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(recall_app, name="recall")
    app.command("rescan")(rescan_cmd)
