"""Results of a run: the SQLite store (the source of truth), and plots."""
