"""Deployment: the model's streaming recurrence as ONNX step graphs with explicit state, an onnxruntime runner the
`Upscaler` drives unchanged, and the parity check against PyTorch (docs/export.md)."""
