"""The ports: the small protocols the platform is written against (the event log, profile lookups)."""
