"""Static int8 (QDQ) copies of exported CNNs, calibrated on training images.

``make bench``'s quantisation section judged them worth serving (same test accuracy, half the
latency for both CNNs on this CPU); the export step writes one beside the fp32 graph of each CNN
(``export.int8_graph``) and the card says which the service runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class Calibration(CalibrationDataReader):
    """Calibration inputs in batches of 16: the activation ranges static int8 quantisation fixes."""

    def __init__(self, name: str, inputs: np.ndarray, batch: int = 16) -> None:
        self._feeds = iter([{name: inputs[i:i + batch]} for i in range(0, len(inputs), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantizable(source: Path, scratch: Path) -> Path:
    """A copy without the exporter's value_info: the quantizer turns Gemm into MatMul on a
    transposed weight but keeps the weight's recorded shape, which its shape inference refuses."""
    model = onnx.load(str(source))
    del model.graph.value_info[:]
    path = scratch / f"{source.stem}.quantizable.onnx"
    onnx.save(model, str(path))
    return path


def write_int8_qdq(source: Path, target: Path, input_name: str, calibration: np.ndarray,
                   reduce_range: bool = True) -> None:
    """``source`` quantised to int8 QDQ (per-channel 7-bit int8 weights, uint8 activations) into ``target``.

    ``reduce_range``: on x86 CPUs with AVX2 but without VNNI, ONNX Runtime multiplies uint8 by int8
    with VPMADDUBSW, whose 16-bit pair sums saturate for full-range weights (255 * 127 * 2 > 32767),
    so the same graph answered differently there than on VNNI or AMX machines (ONNX Runtime's
    quantization guide names this trap and this remedy). With 7-bit weights the sums stay below
    255 * 64 * 2 = 32640, exact on every x86 kernel (``bench.int8_portability`` compares full range)."""
    with tempfile.TemporaryDirectory(prefix="zooserve-int8-") as scratch:
        quantize_static(quantizable(source, Path(scratch)), target, Calibration(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
