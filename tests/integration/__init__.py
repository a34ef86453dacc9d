"""Tests against the real Kafka broker of the test session (marker `kafka`)."""
