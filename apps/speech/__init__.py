"""Speech recognition (``asr/``) and synthesis (``tts/``) on one shared root: audio I/O, log-mel
features, manifests and the bundled espeak-ng corpus, the data modules, metrics, and the commands
(train, export, transcribe, synthesize)."""
