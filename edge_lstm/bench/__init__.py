"""``edge-lstm bench``: engine, end-to-end and memory figures, baselines in the same run."""
