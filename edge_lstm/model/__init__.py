"""The model: metadata, interpreter, per-sensor state and the forecasters (pure numpy + TFLite).

The public API (``Forecaster``, the baselines) lives here. Nothing in this package knows of MQTT,
files other than the model's own, or the daemon; it imports no paho and no TensorFlow.
"""
