"""AIRA-Design: agents write sequence-mixing mechanisms (`model.py`) and training scripts (`train.py`); a
sandbox checks, compiles, trains and scores each candidate in a fresh subprocess."""
