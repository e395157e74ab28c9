"""Per-copy claims of a recall job, safe when several workers act on one job at the same time.

A claim is one conditional UPDATE: only copies still pending (or retryable, or held by a claim
whose lease ran out because its worker died) move to "working", stamped with a token (the claim
time, unique per claim). Results are written back only where the token still matches, so a
worker that lost its claim can never overwrite the outcome of the one that took over.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from mailmoat.store.recall_models import RecallCopyRow

WORKING = "working"


def claimable(max_tries: int, stale_before: float) -> ColumnElement[bool]:
    """Copies a worker may take now."""
    return or_(
        RecallCopyRow.state == "pending",
        and_(RecallCopyRow.state == "failed", RecallCopyRow.attempts < max_tries),
        and_(RecallCopyRow.state == WORKING, RecallCopyRow.updated_at < stale_before),
    )


def todo_ids(s: Session, job_id: str, max_tries: int, stale_before: float) -> list[int]:
    """Ids of the job's copies that still need acting on (oldest first)."""
    cond = claimable(max_tries, stale_before)
    return list(s.scalars(select(RecallCopyRow.id).where(RecallCopyRow.job_id == job_id, cond).order_by(RecallCopyRow.id)))


def claim_copies(
    s: Session, job_id: str, ids: Sequence[int], *, max_tries: int, stale_before: float, owner: str = ""
) -> tuple[float, list[RecallCopyRow]]:
    """Claim those of `ids` nobody else holds; returns the claim token and the claimed rows (committed).

    A copy in "working" whose claim is older than `stale_before` is taken over: its worker died.
    While claimed, its `reason` names the claiming worker (who holds what, for the operator).
    """
    now = time.time()
    token = now + random.random() * 1e-3  # unique per claim: the fence for writing results back
    s.execute(
        update(RecallCopyRow)
        .where(RecallCopyRow.job_id == job_id, RecallCopyRow.id.in_(list(ids)), claimable(max_tries, stale_before))
        .values(state=WORKING, updated_at=token, reason=f"claimed by {owner}" if owner else "claimed")
        .execution_options(synchronize_session=False)
    )
    s.commit()
    rows = list(
        s.scalars(
            select(RecallCopyRow)
            .where(RecallCopyRow.job_id == job_id, RecallCopyRow.state == WORKING, RecallCopyRow.updated_at == token)
            .order_by(RecallCopyRow.id)
        )
    )
    return token, rows


def release(s: Session, job_id: str, token: float, reason: str) -> None:
    """Give claimed copies back as failed (retryable) when acting on them raised."""
    s.execute(
        update(RecallCopyRow)
        .where(RecallCopyRow.job_id == job_id, RecallCopyRow.state == WORKING, RecallCopyRow.updated_at == token)
        .values(state="failed", reason=reason[:1000], attempts=RecallCopyRow.attempts + 1, updated_at=time.time())
        .execution_options(synchronize_session=False)
    )
    s.commit()


__all__ = ["WORKING", "claim_copies", "claimable", "release", "todo_ids"]
