"""The platform core: configuration, ports, the embedded log and runtime,
the DuckDB query layer, services, and the composition modules (CLI)."""

__version__ = "0.1.0"
