"""The demo: the synthetic shop generator and ``cdp demo``. Nothing on the serving path imports it."""
