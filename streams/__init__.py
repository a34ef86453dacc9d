"""Everything that touches Kafka: broker harness, publisher, worker, adapters."""
