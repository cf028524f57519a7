"""Sources: where events come from (files now; HTTP collector and webhooks next)."""
