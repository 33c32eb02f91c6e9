"""The model file: writing and loading it (file), its header read without torch (header),
the size limits a loaded model is checked against (limits), ``aedetect info`` (info) and
the ONNX export plumbing (onnx)."""
