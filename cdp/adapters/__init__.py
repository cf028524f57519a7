"""Adapters: the storage and transport behind the ports (DuckDB, Kafka, the Parquet archive, the local socket)."""
