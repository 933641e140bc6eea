"""ZooServe training: data loaders, model families, and the shared ONNX export step."""
