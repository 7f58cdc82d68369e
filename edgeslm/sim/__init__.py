"""A plant simulator: realistic machine telemetry with injected faults, for demos and engineers' tests."""
