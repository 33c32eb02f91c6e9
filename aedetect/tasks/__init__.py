"""Task heads: what the one training loop is told to do, and what is fitted after it.

A head supplies the input corruption (denoise: synthetic noise; anomaly: none) and a
``calibrate`` step run on held-out normal images after training, whose result is saved in
the model file (anomaly: thresholds; denoise: nothing to calibrate).
"""

from __future__ import annotations

from aedetect.tasks.base import TaskHead, get_head

__all__ = ["TaskHead", "get_head"]
