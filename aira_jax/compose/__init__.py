"""AIRA-Compose: agents search layer layouts, a fixed evaluator trains each on a proxy task, the best are
aggregated, stretched or stacked to large depth, and an isoFLOP scaling study decides which family wins."""
