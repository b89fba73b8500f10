"""Portkey as a source: its API and settings (`api`), export jobs and their downloads
(`exports`), and single logs for `--enrich` (`enrich`)."""
