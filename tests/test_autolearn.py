"""The gateway's scheduled learning from the store: verdicts always, old untouched deliveries when enabled."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from mailmoat.classify import Classifier, model_path
from mailmoat.classify.autolearn import learn_once, run_autolearn
from mailmoat.cli.train import train_dirs
from mailmoat.config import Settings
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from tests.support.mailgen import synthetic_eml

DAY = 86400.0


def _settings(tmp_path: Path, trained: bool = True) -> Settings:
    settings = Settings(data_dir=str(tmp_path / "var"))
    if trained:
        rng = random.Random(3)
        for label, spam in (("ham", False), ("spam", True)):
            d = tmp_path / label
            d.mkdir()
            for i in range(8):
                (d / f"{i}.eml").write_bytes(synthetic_eml(rng, spam, chinese=False))
        train_dirs(settings, [tmp_path / "ham"], [tmp_path / "spam"], jobs=1, qr=False)
    rng = random.Random(4)
    raw = settings.raw_dir
    raw.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    now = time.time()
    with store.session() as s:
        for mid, age, status in [("m-released", 1.0, "released"), ("m-old", 5.0, "processed"), ("m-new", 0.5, "processed")]:
            path = raw / f"{mid}.eml"
            path.write_bytes(synthetic_eml(rng, False, chinese=False))
            s.add(MessageRow(id=mid, received_at=now - age * DAY, direction="inbound", action="deliver", mail_from="news@example.org",
                             score=0.0, raw_path=str(path), status=status))
    store.close()
    return settings


def test_without_a_model_nothing_is_learnt(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trained=False)
    assert learn_once(settings) is None
    assert not model_path(settings).exists()


def test_verdicts_always_deliveries_only_when_enabled(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    counts = learn_once(settings)
    assert counts is not None and (counts["ham"], counts["delivered"]) == (1, 0)
    clf = Classifier.open(model_path(settings))
    assert clf.model.nham == 9 and clf.learned_as("m-released") == "ham" and clf.learned_as("m-old") is None

    settings.classifier.learn_delivered_after_days = 3
    counts = learn_once(settings)
    assert counts is not None and (counts["ham"], counts["delivered"], counts["already"]) == (0, 1, 1)
    clf = Classifier.open(model_path(settings))
    assert clf.model.nham == 10 and clf.learned_as("m-old") == "ham" and clf.learned_as("m-new") is None


def test_the_schedule_runs_until_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.classifier.learn_delivered_after_days = 3
    settings.classifier.learn_every_hours = 0.5 / 3600  # every half second

    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(run_autolearn(settings, stop, first_after=0.0))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if Classifier.open(model_path(settings)).model.nham == 10:
                break
        # A message released meanwhile is learnt by the next run.
        store = Store(settings.db_url)
        with store.session() as s:
            s.get(MessageRow, "m-new").status = "released"  # type: ignore[union-attr]
        store.close()
        for _ in range(100):
            await asyncio.sleep(0.1)
            if Classifier.open(model_path(settings)).learned_as("m-new") == "ham":
                break
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        return Classifier.open(model_path(settings)).model.nham

    assert asyncio.run(main()) == 11


def test_no_schedule_when_switched_off(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.classifier.learn_every_hours = 0

    async def main() -> None:
        await asyncio.wait_for(run_autolearn(settings, asyncio.Event(), first_after=0.0), timeout=5)

    asyncio.run(main())
    assert Classifier.open(model_path(settings)).model.nham == 8


def test_a_shutdown_ends_a_run_early(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.classifier.learn_delivered_after_days = 3
    counts = learn_once(settings, stop=lambda: True)
    assert counts is not None and (counts["ham"], counts["delivered"]) == (0, 0)
    assert Classifier.open(model_path(settings)).learned_as("m-released") is None


def test_a_message_that_cannot_be_learnt_does_not_stop_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.parse

    settings = _settings(tmp_path)
    settings.classifier.learn_delivered_after_days = 3
    real = mailmoat.parse.parse
    broken = (settings.raw_dir / "m-released.eml").read_bytes()

    def parse(raw: bytes, **kw: Any) -> Any:
        if raw == broken:
            raise RuntimeError("a parser bug")
        return real(raw, **kw)

    monkeypatch.setattr(mailmoat.parse, "parse", parse)
    counts = learn_once(settings)
    assert counts is not None and (counts["failed"], counts["delivered"]) == (1, 1)
    clf = Classifier.open(model_path(settings))
    assert clf.learned_as("m-old") == "ham" and clf.learned_as("m-released") is None


def test_the_gateway_learns_outgoing_mail_by_default(tmp_path: Path) -> None:
    """`classifier.learn_outbound_after_days` is on (3 days) by default; 0 switches it off."""
    settings = _settings(tmp_path)
    assert settings.classifier.learn_outbound_after_days == 3.0
    store = Store(settings.db_url)
    with store.session() as s:
        for mid, age in [("o-old", 5.0), ("o-new", 1.0)]:
            path = settings.raw_dir / f"{mid}.eml"
            path.write_bytes(synthetic_eml(random.Random(5), False, chinese=False))
            s.add(MessageRow(id=mid, received_at=time.time() - age * DAY, direction="outbound", action="deliver",
                             score=0.0, auth_user="li.na", mail_from="li.na@victim-corp.com", raw_path=str(path),
                             status="processed"))
    store.close()
    settings.classifier.learn_outbound_after_days = 0
    counts = learn_once(settings)
    assert counts is not None and (counts["ham"], counts["outbound"]) == (1, 0)
    settings.classifier.learn_outbound_after_days = 3.0
    counts = learn_once(settings)
    assert counts is not None and (counts["outbound"], counts["already"]) == (1, 1)
    clf = Classifier.open(model_path(settings))
    assert clf.learned_as("o-old") == "ham" and clf.learned_as("o-new") is None and clf.learned_as("m-old") is None
