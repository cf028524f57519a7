"""The read side: "who is this?" answered from the checkpointed projections (SQL) or the in-memory read model."""
