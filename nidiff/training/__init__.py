"""Training: the Lightning module, its step, callbacks, loggers and the ``nidiff train`` entry point."""
