"""mailwarden: real-time credential-theft and abuse detection for mail platforms."""

__version__ = "0.1.0"
