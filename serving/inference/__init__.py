"""Inference around the ONNX graphs: image decoding and ink, classification, forecasts, generation, explanations."""
