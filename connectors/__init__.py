"""The edges of the platform: sources that bring events in, destinations that
take audiences out. They depend on ``cdp`` services, never the reverse."""
