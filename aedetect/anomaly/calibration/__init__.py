"""The threshold and the flag: calibration rules (threshold, tail), the flag's FPR interval
(reliability), calibration images seen in training (overlap) and a loaded calibration
record checked field by field (calfields)."""
