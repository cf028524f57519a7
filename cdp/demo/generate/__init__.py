"""Deterministic demo data: a year of 茶の間, a Japanese online tea shop, as Segment events.

API::

    iter_events(GenerateConfig(seed=42))        # raw wire-form dicts, chunk by chunk
    generate(Path("events.jsonl"), config)      # JSON Lines; returns GenerateStats
    generate(path, config, progress=print, workers=4)   # same bytes, 4 processes

Every event passes ``schemas.decode``. The same config gives the same bytes;
memory stays bounded (``CHUNK_CUSTOMERS`` customers at a time, see
``cdp.demo.generate.writer``). The default config simulates 5,200 customers, about
215,000 events from 2025-10-31 to 2026-10-31 (JST): anonymous browsing,
newsletter and contact forms, registrations, orders, refunds, monthly A/B
newsletters, LINE/X/Instagram messages, support tickets, NPS surveys and
consent changes (see ``cdp.demo.generate.shop`` and ``cdp.demo.generate.channels``).

The planted sequence pattern (MISSION item 6)
---------------------------------------------
"People who buy A buy B in bulk about two months later":

- ``PRODUCT_A`` = ``TEA-STARTER`` (抹茶スターターキット, ¥4,980) is bought only
  as the *first* order of a buyer whose first order is at least 76 days before
  the end (and before any lapse), with probability 0.10 each: about **8% of
  all buyers** (8.1% over 40,000 customers; 124 of 1,637 = 7.6% in the default
  run).
- **60%** of A-buyers (``B_FOLLOW_SHARE``) order ``PRODUCT_B`` =
  ``MATCHA-BULK-500`` (業務用抹茶 500g, ¥6,800) in bulk, **quantity 5-10**
  (uniform), **gap ~ normal(mean 60 days, sd 6) after the A order, clipped
  to 45-75 days**. Measured: 60.2% over 40,000 customers; 75 of 124 = 60.5%
  in the default run. The other 40% never buy B.
- Buyers who never bought A buy B rarely: 1.5% of them put 1-2 bags of B into
  one ordinary order (1.6% measured over 40,000 customers). Nobody else
  buys A.

So among A-buyers, the share with a B order of quantity >= 5 placed 45-75
days after A is ~60%; among other buyers any B order is ~1.6%. No campaign
promotes B: the pattern is there for the analytics to find, not explained.
"""

from cdp.demo.generate.catalog import BULK_MATCHA, STARTER_KIT
from cdp.demo.generate.config import GenerateConfig, GenerateStats
from cdp.demo.generate.writer import generate, iter_events

PRODUCT_A: str = STARTER_KIT.product_id
"""``TEA-STARTER``: the planted pattern's first product."""
PRODUCT_B: str = BULK_MATCHA.product_id
"""``MATCHA-BULK-500``: bought in bulk ~60 days after ``PRODUCT_A`` by 60% of its buyers."""

__all__ = ["PRODUCT_A", "PRODUCT_B", "GenerateConfig", "GenerateStats", "generate", "iter_events"]
