"""Generative retrieval: interaction logs users bring, the bundled MovieLens-100k, leave-one-out examples."""
