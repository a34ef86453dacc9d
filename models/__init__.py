"""Schemas (events, alerts, commands) and the pure detection logic over them."""
