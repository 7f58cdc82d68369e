"""Streaming detectors (pure, one per file), the anomaly-likelihood calibrator, alarms and the engine."""
