"""Speech recognition and synthesis: audio I/O, manifests and the bundled espeak-ng corpus."""
