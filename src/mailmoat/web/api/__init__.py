"""The JSON API routers, mounted under /api/v1."""

from fastapi import APIRouter

from mailmoat.web.api import (
    audit,
    classifier,
    incidents,
    indicators,
    lists,
    messages,
    quarantine,
    recall,
    reports,
    rules,
    stats,
    status,
    users,
)

ROUTERS: list[APIRouter] = [
    messages.router, quarantine.router, recall.router, incidents.router, indicators.router, rules.router,
    stats.router, status.router, audit.router, users.router, classifier.router, lists.router, reports.router,
]
