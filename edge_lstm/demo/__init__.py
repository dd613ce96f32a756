"""`edge-lstm demo`: the daemon, a broker and recorded data, watched from a live table."""
