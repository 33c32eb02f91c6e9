"""The core every head shares: typed config and presets, the task-head registry (heads), the
network (model/), the model file (modelfile/) and the one training pipeline (training/).

May import ``aedetect.data``, ``aedetect.util`` and ``aedetect.errors``; never a head
(``anomaly``, ``denoise``), ``inspect`` or ``cli``: heads are found through the registry
in :mod:`aedetect.core.heads`. Inside, rooms import downwards only (config, heads, presets <-
model <- modelfile <- training; tests/test_layout.py).
"""
