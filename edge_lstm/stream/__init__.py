"""Sensor streams, pure: inbound readings, resampling to model steps, topics, outbound documents."""
