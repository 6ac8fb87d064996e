"""Results of a run, shared by compose and design: the SQLite store (the source of truth), the run directory's
files (`run_files`), markdown tables for reports, and plots."""
