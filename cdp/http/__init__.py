"""The HTTP entry point (``cdp serve``): the app wiring and its route modules."""
