"""Learning from the store on a schedule: administrators' verdicts, and old untouched deliveries as ham when enabled."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mailmoat.config import Settings
from mailmoat.schedule import run_every

log = logging.getLogger("mailmoat.classify")

# The first run waits this long after start-up, so that a restart does not add a model load and a
# store scan to the busiest minute of the gateway's life.
FIRST_RUN_AFTER = 300.0


def learn_once(settings: Settings, now: float | None = None, stop: Callable[[], bool] | None = None) -> dict[str, int] | None:
    """One pass of `mailmoat train --from-store [--delivered-as-ham N days] [--outbound-as-ham M days]`;
    None when there is no model to add to (learning starts from a trained model: a store holds no
    spam to start one)."""
    from mailmoat.classify import model_path, model_source
    from mailmoat.classify.store_learning import train_from_store

    cfg = settings.classifier
    if not cfg.enabled or model_source(model_path(settings)) is None:
        return None
    now = time.time() if now is None else now
    before = now - cfg.learn_delivered_after_days * 86400.0 if cfg.learn_delivered_after_days > 0 else None
    sent_before = now - cfg.learn_outbound_after_days * 86400.0 if cfg.learn_outbound_after_days > 0 else None
    return train_from_store(settings, before, cfg.learn_max_delivered, stop=stop, outbound_before=sent_before)


async def run_autolearn(settings: Settings, stop: asyncio.Event, first_after: float = FIRST_RUN_AFTER) -> None:
    """`learn_once` every `classifier.learn_every_hours` until `stop` is set (never when that is 0).

    The gateway's classifiers pick the saved model up within 30 s, as after `mailmoat train`.
    """
    period = settings.classifier.learn_every_hours * 3600.0
    if period <= 0 or not settings.classifier.enabled:
        return

    async def learn() -> None:
        # A run parses up to learn_max_delivered messages; a shutdown ends it early (it saves what
        # it has learnt) instead of waiting for the last one.
        counts = await asyncio.to_thread(learn_once, settings, None, stop.is_set)
        if counts is None:
            log.info("classifier: no model yet, nothing learnt from the store (train one with `mailmoat train`)")
        elif counts["ham"] or counts["phish"] or counts["delivered"] or counts["outbound"]:
            log.info(
                "classifier: learnt %d released as ham, %d recalled as phishing, %d delivered as ham, %d sent out as ham",
                counts["ham"], counts["phish"], counts["delivered"], counts["outbound"],
            )

    await run_every(stop, first_after, period, learn, log, "classifier: learning from the store")
