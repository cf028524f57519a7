"""Services: what the platform does (ingest, collect, sources and tokens, segments, analytics, query), independent of HTTP and CLI."""
