"""Speech synthesis: the acoustic models (decoder-only and Transformer-TTS), the Griffin-Lim
vocoder, ONNX export, and the LightningModule (``task.py``)."""
