"""The local socket of a data directory: how the CLI reaches a running ``cdp serve``."""
