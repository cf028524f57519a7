"""The embedded runtime: the folds applied in-process to the log, replay, and the one writer."""
