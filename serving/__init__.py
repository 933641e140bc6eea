"""ZooServe serving: a BentoML service over the ONNX graphs in models/ (no torch, no training code)."""
