"""Commands that use trained models and data: ``nidiff sample``, ``nidiff eval``, ``nidiff fid-ref``."""
