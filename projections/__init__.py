"""Pure folds: apply(state, event) -> state; no I/O, no clock."""
