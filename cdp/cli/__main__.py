"""``python -m cdp.cli``."""

from cdp.cli import main

main()
