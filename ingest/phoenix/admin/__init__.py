"""Operator tools on a Phoenix server, beside the delivery path: project totals (`reconcile`),
the model price table (`prices`), span deletes (`resync`), project ids and links, the checks
before a backfill, and a local server for `demo`, tests and benchmarks."""
