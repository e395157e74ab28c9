"""Prometheus metrics: counters and latency histograms the pipeline calls, store-derived gauges, one /metrics text.

Worker processes. The gateway's workers are spawned interpreters, so counters they bump are not
in the web process's memory. `prepare_multiprocess(settings)` (called by `mailmoat serve` before it
starts the workers) points PROMETHEUS_MULTIPROC_DIR at `<data_dir>/metrics`; every process started
after that writes its counters and histograms to files there, and `exposition()` adds them up.
State that lives in the store (delivery queue, spool, recall copies) is read from there at scrape
time instead, so it is right whichever process changed it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client import multiprocess as mp
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=False)

MESSAGES = Counter(
    "mailmoat_messages", "Messages processed, by direction and final action", ["direction", "action"], registry=REGISTRY
)
SYMBOL_HITS = Counter("mailmoat_symbol_hits", "Findings per symbol", ["symbol"], registry=REGISTRY)
ANALYZER_FAILURES = Counter(
    "mailmoat_analyzer_failures", "Analyzers that crashed or ran out of time", ["analyzer"], registry=REGISTRY
)
SCAN_SECONDS = Histogram(
    "mailmoat_scan_seconds", "Time to parse, analyze and decide one message", registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DELIVERY_SECONDS = Histogram(
    "mailmoat_delivery_seconds", "Time to deliver the copies of one message (one attempt)", ["status"],
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DELIVERIES = Counter("mailmoat_deliveries", "Delivery attempts of single copies, by outcome", ["status"], registry=REGISTRY)
RECALL_COPIES = Counter(
    "mailmoat_recall_copy_results", "Recall and restore results of single copies", ["state"], registry=REGISTRY
)
DIGESTS = Counter("mailmoat_digests", "Quarantine digests sent to recipients, by outcome", ["status"], registry=REGISTRY)
BANNERS = Counter(
    "mailmoat_banners", "Warning banners put above a message's text, or left out (signed mail, text that cannot be "
    "read back exactly), by kind", ["kind", "result"], registry=REGISTRY,
)
DIGEST_RELEASES = Counter(
    "mailmoat_digest_releases", "Held copies released by their recipients through a digest's link", registry=REGISTRY
)
REPORTS = Counter(
    "mailmoat_reports", "Messages colleagues reported to the report mailbox, by how the reported message was found "
    "(tracking_id, message_id, sender_subject, subject, none)", ["matched_by"], registry=REGISTRY,
)
REPORT_FEEDBACK = Counter(
    "mailmoat_report_feedback", "Notices to a colleague who reported a message: a receipt, or what became of it, by "
    "outcome (received, threat, safe) and status (sent, failed)", ["outcome", "status"], registry=REGISTRY,
)
ARC_SEALS = Counter(
    "mailmoat_arc_seals", "ARC sets added to mail handed to the mail system, by result (sealed, left_out, error)",
    ["result"], registry=REGISTRY,
)
SAFE_SENDER_RELEASES = Counter(
    "mailmoat_safe_sender_releases", "Held copies released at once because their recipient keeps the sender as safe",
    registry=REGISTRY,
)
RELEASE_REQUESTS = Counter(
    "mailmoat_release_requests", "Requests from recipients, through a digest's link, that the administrators release a held copy",
    registry=REGISTRY,
)
DECLINE_NOTICES = Counter(
    "mailmoat_decline_notices", "Notices to a recipient that the administrators declined their release request, by status (sent, failed)",
    ["status"], registry=REGISTRY,
)


# -- calls for the pipeline, delivery and recall ---------------------------------------------


def record_verdict(direction: str, verdict: Any, seconds: float | None = None) -> None:
    """One scanned message: its direction and action, each symbol hit, analyzer failures, scan time."""
    action = getattr(getattr(verdict, "action", ""), "value", str(getattr(verdict, "action", "")))
    MESSAGES.labels(direction=str(getattr(direction, "value", direction)), action=action).inc()
    for f in getattr(verdict, "findings", []) or []:
        SYMBOL_HITS.labels(symbol=f.symbol).inc()
        if f.symbol == "ANALYZER_FAILED":
            name = str((f.data or {}).get("analyzer") or f.source or "unknown")
            ANALYZER_FAILURES.labels(analyzer=name).inc()
    if seconds is not None:
        SCAN_SECONDS.observe(seconds)


def record_delivery(outcomes: Iterable[Any], seconds: float) -> None:
    """One delivery round of a message: each copy's status, and how long the round took."""
    statuses = [str(getattr(o, "status", "unknown")) for o in outcomes]
    for st in statuses:
        DELIVERIES.labels(status=st).inc()
    overall = "delivered" if statuses and all(s == "delivered" for s in statuses) else (statuses[0] if statuses else "none")
    DELIVERY_SECONDS.labels(status=overall).observe(seconds)


def record_recall(results: Iterable[Any]) -> None:
    """Per-copy results of a recall or restore batch (CopyResult objects with .state)."""
    for r in results:
        RECALL_COPIES.labels(state=str(getattr(r, "state", "unknown"))).inc()


class Timer:
    """`with Timer() as t: ...; t.seconds` — a monotonic stopwatch for the calls above."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# -- worker processes ------------------------------------------------------------------------


def prepare_multiprocess(settings: Any) -> Path:
    """Point child processes at a fresh metrics directory; call before starting worker processes."""
    d = Path(settings.data_dir) / "metrics"
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)  # counters restart with the gateway, as Prometheus expects
    d.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(d.resolve())
    return d


def worker_exited(pid: int) -> None:
    """A worker process ended: drop its live gauges (its counters stay summed in)."""
    if os.environ.get(ENV_DIR):
        mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _this_process_writes_files() -> bool:
    return values.ValueClass is not values.MutexValue


# -- the exposition --------------------------------------------------------------------------


class StoreCollector:
    """Gauges read at scrape time: delivery queue, spool, recall copies, recent messages, the classifier's model."""

    def __init__(self, store: Any, settings: Any) -> None:
        self.store = store
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        # From the model file, not the store: answered even when the database is down.
        yield from _classifier_metrics(self.settings)

        from mailmoat.store.models import DeliveryRow, MessageRow
        from mailmoat.store.recall_models import RecallCopyRow

        queue = GaugeMetricFamily("mailmoat_queue_depth", "Copies waiting in the delivery queue, by state", labels=["state"])
        recall = GaugeMetricFamily("mailmoat_recall_copies", "Copies in recall jobs, by state", labels=["state"])
        recent = GaugeMetricFamily(
            "mailmoat_messages_last_24h", "Messages recorded in the last 24 hours", labels=["direction", "action"]
        )
        try:
            with self.store.session() as s:
                for state, n in s.execute(
                    select(DeliveryRow.status, func.count())
                    .where(DeliveryRow.status.in_(["pending", "sending", "deferred", "held"]))
                    .group_by(DeliveryRow.status)
                ):
                    queue.add_metric([state], n)
                for state, n in s.execute(select(RecallCopyRow.state, func.count()).group_by(RecallCopyRow.state)):
                    recall.add_metric([state], n)
                since = time.time() - 86400
                for direction, action, n in s.execute(
                    select(MessageRow.direction, MessageRow.action, func.count())
                    .where(MessageRow.received_at >= since)
                    .group_by(MessageRow.direction, MessageRow.action)
                ):
                    recent.add_metric([direction, action], n)
        except Exception:  # a scrape must answer even when the database does not
            up = GaugeMetricFamily("mailmoat_store_up", "Whether the store answered this scrape")
            up.add_metric([], 0)
            yield up
            return
        spool = GaugeMetricFamily("mailmoat_spool_depth", "Accepted messages not yet processed", labels=["state"])
        base = Path(self.settings.spool_dir)
        spool.add_metric(["new"], _count_files(base / "new"))
        spool.add_metric(["work"], sum(_count_files(p) for p in _subdirs(base / "work")))
        yield queue
        yield spool
        yield recall
        yield recent
        # The file's and the store's near copies: after the store has answered.
        yield _near_copy_metric(self.settings, self.store)


def _near_copy_metric(settings: Any, store: Any) -> Metric:
    from mailmoat.classify import near_copy_count

    near = GaugeMetricFamily("mailmoat_near_copies", "Messages learnt as spam or phishing (trained, recalled) kept for near-copy matching")
    count = near_copy_count(settings, store)
    if count is not None:
        near.add_metric([], count)
    return near


def _classifier_metrics(settings: Any) -> Iterator[Metric]:
    """Whether the classifier has a model (a fresh install has none: worth an alert) and what it learnt."""
    from mailmoat.classify import model_status

    state = model_status(settings)
    trained = GaugeMetricFamily("mailmoat_classifier_trained", "Whether the statistical classifier has a readable trained model")
    trained.add_metric([], 1 if state["trained"] and state["enabled"] else 0)
    yield trained
    learnt = GaugeMetricFamily("mailmoat_classifier_messages", "Messages the classifier's model has learnt, by label", labels=["label"])
    for label, n in (state["messages"] or {}).items():
        learnt.add_metric([label], n)
    yield learnt


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


def _count_files(path: Path) -> int:
    try:
        with os.scandir(path) as it:
            return sum(1 for e in it if e.is_file() and not e.name.startswith("."))
    except OSError:
        return 0


class _Merged:
    """Families from several collectors, with samples of the same name and labels added together."""

    def __init__(self, sources: list[Any]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for src in self.sources:
            for fam in src.collect():
                if fam.name not in families:
                    families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                    sums[fam.name] = {}
                acc = sums[fam.name]
                for smp in fam.samples:
                    if smp.name.endswith("_created"):
                        continue  # per-process creation stamps cannot be added up
                    key = (smp.name, tuple(sorted(smp.labels.items())))
                    acc[key] = acc.get(key, 0.0) + smp.value
        for name, fam in families.items():
            for (sname, labels), value in sums[name].items():
                fam.add_sample(sname, dict(labels), value)
            yield fam


def exposition(store: Any, settings: Any) -> tuple[bytes, str]:
    """The /metrics body: this process, the worker processes (multiprocess files), and the store gauges."""
    sources: list[Any] = []
    mp_dir = os.environ.get(ENV_DIR)
    if not mp_dir:
        # `mailmoat web` on its own still sees what a running gateway's workers wrote.
        default = Path(settings.data_dir) / "metrics"
        mp_dir = str(default) if default.is_dir() else ""
    if mp_dir and Path(mp_dir).is_dir():
        reg = CollectorRegistry()
        mp.MultiProcessCollector(reg, path=mp_dir)  # type: ignore[no-untyped-call]
        sources.append(reg)
    if not (os.environ.get(ENV_DIR) and _this_process_writes_files()):
        sources.append(REGISTRY)  # in-memory values; in multiprocess mode they are already in the files
    sources.append(StoreCollector(store, settings))
    return generate_latest(_Merged(sources)), CONTENT_TYPE_LATEST
