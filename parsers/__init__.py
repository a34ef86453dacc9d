"""Pure functions from raw log lines to normalized events. No I/O, no Kafka."""
