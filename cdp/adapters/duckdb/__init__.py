"""The DuckDB adapter: the embedded log, the projection tables and the SQL views."""
