"""The Parquet archive of the distributed runtime, read side.

- ``layout``: directories, file names and Parquet columns of each dataset;
- ``manifest``: the append-only record of which file holds which offsets;
- ``session``: DuckDB over the archive with the embedded SQL surface
  (``cdp sql --archive``, segments);
- ``log``: a read-only ``EventLog`` over the archived events;
- ``restore``: copy the archived events into a local data directory
  (``cdp replay --archive``);
- ``erase``: remove one person's rows from the archive (privacy erasure).

The archiver that writes it is a destination connector:
``connectors.destinations.archive``. docs/archive.md describes the whole.
"""
