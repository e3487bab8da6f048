"""Sequence-to-sequence translation: G2P on the CMU dictionary, Spanish-English Bible verses, user corpora."""
