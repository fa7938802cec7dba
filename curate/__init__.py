"""curate: trajectory curation for capacity-aligned agent distillation."""

from .store import SCHEMA_VERSION, SchemaVersionError, Store

__version__ = "0.1.0"
__all__ = ["SCHEMA_VERSION", "SchemaVersionError", "Store", "__version__"]
