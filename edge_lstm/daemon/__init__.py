"""The daemon (`edge-lstm run`): config, the MQTT link, the pipeline, persistence and health."""
