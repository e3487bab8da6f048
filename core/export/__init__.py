"""ONNX export (``torch.onnx.export(dynamo=True)``) and the onnxruntime runner apps use for inference."""
from core.export.onnx_seq2seq import (
    CONFIG_FILE, DECODER_FILE, DEFAULT_OPSET, ENCODER_FILE, decoder_input_names, decoder_output_names,
    decoder_layer_specs, encoder_output_names, export_encoder_decoder, stack_layer_specs,
)
from core.export.onnx_mixer import export_mixer_step
from core.export.runtime import OnnxEncoderDecoder

__all__ = [
    "CONFIG_FILE", "DECODER_FILE", "DEFAULT_OPSET", "ENCODER_FILE", "OnnxEncoderDecoder", "decoder_input_names", "decoder_layer_specs", "export_mixer_step",
    "decoder_output_names", "encoder_output_names", "export_encoder_decoder", "stack_layer_specs",
]
