"""Pytest fixtures for a real Postfix and Dovecot on loopback."""
