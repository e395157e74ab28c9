"""SMTP ingest: the listeners (inbound MX, internal/outbound relay) and the durable spool behind them."""
