"""Genomics: DNA language modelling and per-nucleotide gene annotation (``dna``) over any core
backbone; peptides and molecules follow the same layout."""
