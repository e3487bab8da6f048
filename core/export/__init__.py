"""ONNX export (``torch.onnx.export(dynamo=True)``) and the onnxruntime runners apps use for inference.

Every step graph names its state with :mod:`core.export.names`, lays it out with
:mod:`core.export.states`, is written by :mod:`core.export.graph` (one opset, atomic files) and
runs through :class:`StepSession`, which hands ``present*`` outputs back as ``past*`` inputs.
"""
from core.export.graph import (
    CONFIG_FILE, DEFAULT_OPSET, check_dynamo, exporting, export_graph, max_len, new_output_dir, save_program,
    write_config,
)
from core.export.names import cross_names, is_present, layer_state_names, past_name
from core.export.states import (
    LayerState, example_states, flatten_states, present_length_axes, stack_layer_states, state_io_names,
    unflatten_states,
)
from core.export.onnx_seq2seq import (
    DECODER_FILE, ENCODER_FILE, decoder_input_names, decoder_layer_states, decoder_output_names,
    encoder_output_names, export_encoder_decoder, SourceSpec, token_source,
)
from core.export.onnx_decoder import export_decoder_lm, lm_input_names, lm_output_names
from core.export.onnx_mixer import export_mixer_step
from core.export.scan import ScannedMixer, scanned_mixers
from core.export.runtime import (
    OnnxDecoderLM, OnnxEncoderDecoder, StepSession, empty_past, layer_states, open_export, past_feeds, past_states,
    read_config,
)

__all__ = [
    "CONFIG_FILE", "DECODER_FILE", "DEFAULT_OPSET", "ENCODER_FILE", "LayerState", "OnnxDecoderLM",
    "OnnxEncoderDecoder", "ScannedMixer", "SourceSpec", "StepSession", "check_dynamo", "cross_names", "decoder_input_names",
    "decoder_layer_states", "decoder_output_names", "empty_past", "encoder_output_names", "exporting",
    "example_states", "export_decoder_lm", "export_encoder_decoder", "export_graph", "export_mixer_step",
    "flatten_states", "is_present", "layer_state_names", "layer_states", "lm_input_names", "lm_output_names",
    "max_len", "new_output_dir", "open_export", "past_feeds", "past_name", "past_states", "present_length_axes",
    "read_config", "save_program", "scanned_mixers", "stack_layer_states", "state_io_names", "token_source", "unflatten_states",
    "write_config",
]
