"""The rules the folds run with (``RuntimeConfig``), apart from any storage.

Both runtimes read it: the embedded one (``cdp.runtime.embedded``, which saves
its fingerprint with every DuckDB checkpoint) and the faust worker
(``streams.app.WorkerConfig``), which must import neither DuckDB nor pyarrow.
Pure: rules and a hash, no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from projections import identity, lead_score


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The rules the folds run with; their hash is saved with every checkpoint."""

    scoring: lead_score.Rules = lead_score.DEFAULT_RULES
    identity: identity.Rules = field(default_factory=identity.Rules)

    def fingerprint(self) -> str:
        """A short hash of the rules: a checkpoint built with other rules needs a replay."""
        text = orjson.dumps(
            {"scoring": repr(self.scoring), "identity": repr(self.identity)},
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(text).hexdigest()[:16]
