"""What the commands do with a model and a dataset: score (files out), calibrate (a new
threshold from labelled data), merge (score shards), export (ONNX), and their torch-free
option checks (scoreopts)."""
