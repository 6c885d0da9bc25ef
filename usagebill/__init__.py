"""usagebill: usage-based billing over local files, with DuckDB doing the heavy lifting."""

__version__ = "0.1.0"
