"""The incident service the web API uses: list, get and release, as JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from mailmoat.accounts.incidents import IncidentError, list_incidents, release_incident, show_incident
from mailmoat.config import Settings
from mailmoat.store.db import Store


class IncidentService:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        return [i.to_dict() for i in list_incidents(self.store, limit)]

    def get(self, incident_id: str) -> dict[str, Any] | None:
        return show_incident(self.store, incident_id)

    def release(self, incident_id: str, actor: str, note: str = "", source: str = "web") -> dict[str, Any] | None:
        """Release (writes the audit row itself); None when unknown or already released."""
        try:
            return release_incident(self.store, incident_id, actor, note, source=source).to_dict()
        except IncidentError:
            return None
