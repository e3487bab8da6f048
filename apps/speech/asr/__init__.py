"""Speech recognition: the model (front end, encoder, CTC and transducer heads), its losses and
decoders, streaming, ONNX export, and the LightningModule (``task.py``)."""
