"""The one training pipeline: the loop (train), ``fit`` (data -> split -> plan -> train ->
calibrate -> model file), torchrun/DDP (distributed), and what a run records besides the
model: run metrics and TensorBoard."""
