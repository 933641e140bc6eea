"""ZooServe serving: a BentoML service over the ONNX graphs in models/ (no torch, no training code).

Imports run one way, each layer using only those before it:
``settings``, ``errors`` -> ``repository`` -> ``schemas`` -> ``inference`` -> ``protocol`` ->
``service`` -> ``routes`` -> ``runtime`` -> ``server`` (what ``bentoml serve`` imports).
"""
