"""Durable jobs: work due at a time (reminders, digests, webhook retries), kept in the
database so it survives a restart, and run once across the nodes that share it."""
