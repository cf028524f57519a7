"""Destinations: where audiences go (CSV files now; ad platforms next)."""
