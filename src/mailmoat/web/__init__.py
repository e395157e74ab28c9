"""The admin console and JSON API (FastAPI): `create_app(settings, store)` builds the application."""

from mailmoat.web.app import create_app

__all__ = ["create_app"]
