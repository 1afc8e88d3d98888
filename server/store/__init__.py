"""Storage: the schema, its migrations, and the database handle."""

from server.store.database import Database

__all__ = ["Database"]
