"""The bottom layer: the task registry, step results, check tables, display, secrets, state, settings."""
