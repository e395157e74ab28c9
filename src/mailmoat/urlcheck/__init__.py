"""URL and domain checks shared by the URL, impersonation and intel analyzers (no I/O beyond data files)."""
