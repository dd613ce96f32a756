"""Desktop work on recorded data: CSV loading, rolling-origin evaluation, peers, plots, replay."""
