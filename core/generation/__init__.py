"""Search over any decoder: greedy, beam, sampling, with token constraints."""
from core.generation.search import AllowedTokens, GenerationConfig, Hypothesis, beam_search, generate

__all__ = ["AllowedTokens", "GenerationConfig", "Hypothesis", "beam_search", "generate"]
