"""Attachment engines: true types, archives, Office, PDF, HTML/SVG, ClamAV; never executes what it reads."""
