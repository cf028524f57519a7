"""The Parquet archive destination: Kafka topics → hive-partitioned Parquet files.

``Archiver`` (``archiver.py``) consumes the topics; ``rows.py`` turns records
into rows; ``files.py`` writes a roll's files atomically. The layout, the manifest and the readers live in
``cdp.adapters.archive`` so that the core (``cdp sql --archive``, replay) can read an
archive without depending on this package.
"""

from connectors.destinations.archive.archiver import Archiver, ArchiveRun, RollPolicy

__all__ = ["ArchiveRun", "Archiver", "RollPolicy"]
