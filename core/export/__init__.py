"""ONNX export (``torch.onnx.export(dynamo=True)``) and the onnxruntime runner apps use for inference."""
from core.export.onnx_seq2seq import (
    CONFIG_FILE, DECODER_FILE, DEFAULT_OPSET, ENCODER_FILE, decoder_input_names, decoder_output_names,
    decoder_layer_specs, encoder_output_names, export_encoder_decoder,
)
from core.export.states import (
    example_states, flatten_states, layer_state_names, stack_layer_specs, state_io_names, state_shapes,
    unflatten_states,
)
from core.export.onnx_mixer import export_mixer_step
from core.export.scan import ScannedMixer, scanned_mixers
from core.export.runtime import OnnxEncoderDecoder, empty_state_feeds, open_export

__all__ = [
    "CONFIG_FILE", "DECODER_FILE", "DEFAULT_OPSET", "ENCODER_FILE", "OnnxEncoderDecoder", "ScannedMixer",
    "decoder_input_names", "decoder_layer_specs", "decoder_output_names", "empty_state_feeds",
    "encoder_output_names", "example_states", "export_encoder_decoder", "export_mixer_step", "flatten_states",
    "layer_state_names", "open_export", "scanned_mixers", "stack_layer_specs", "state_io_names",
    "state_shapes", "unflatten_states",
]
