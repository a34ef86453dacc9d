"""Pytest fixtures for the real Kafka broker (filled in by the broker harness)."""
