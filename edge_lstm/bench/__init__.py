"""``edge-lstm bench``: engine, end-to-end and memory figures, each baseline measured in the same run."""
