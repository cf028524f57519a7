"""``cdp segment``: list, validate, save, explain, run, history, refresh, delete.

A segment is named (a built-in or a saved one, see ``SegmentCatalog``) or given
as a definition file (``.yaml``/``.yml``/``.json``) for ``explain`` and
``run``. Runs use the read-only connection unless ``--record`` asks to store
the membership diff, which needs the writer's lock (not while ``cdp serve``
runs on the same data directory).

``run`` lists 10 members in a table and says how many it left out; with
``--json`` it lists every member unless ``--limit`` is given.

This module is the group: the commands live in ``segment_definitions``
(list, fields, validate, save, explain, delete) and ``segment_runs`` (run,
refresh, history), and are registered here in the order ``--help`` lists them.
"""

from __future__ import annotations

from cdp.cli import segment_definitions as definitions
from cdp.cli import segment_runs as runs
from cdp.cli._app import sub_app

segment_app = sub_app(
    "segment", "Segments: list, validate, save, explain, run, record history, delete."
)

for _name, _command in (
    ("list", definitions.segment_list),
    ("fields", definitions.segment_fields),
    ("validate", definitions.segment_validate),
    ("save", definitions.segment_save),
    ("explain", definitions.segment_explain),
    ("run", runs.segment_run),
    ("refresh", runs.segment_refresh),
    ("history", runs.segment_history),
    ("delete", definitions.segment_delete),
):
    segment_app.command(_name)(_command)
