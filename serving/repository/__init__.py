"""The model repository: cards, the registry of loaded models, ONNX Runtime sessions, the first run's plan."""
