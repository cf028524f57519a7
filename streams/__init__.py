"""The distributed runtime's faust app and agents (wiring only: decode, look up
state, call the folds from ``projections``, write tables, emit).

The embedded runtime (``cdp.runtime.embedded``) is the default and runs the same folds
in-process. The faust agents that run them on Kafka are built on top of the
``cdp.log.EventLog`` port and the projections' ``combine`` functions; until
they land, ``cdp`` runs embedded only (see docs/architecture.md).
"""
