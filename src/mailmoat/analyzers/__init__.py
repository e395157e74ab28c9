"""Detections: one module per analyzer, each declaring its own symbols (see base.BaseAnalyzer)."""
