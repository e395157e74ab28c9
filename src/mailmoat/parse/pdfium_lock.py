"""The one lock around pdfium, which is not thread-safe while parse runs in worker threads."""

from __future__ import annotations

import threading

PDFIUM_LOCK = threading.Lock()
