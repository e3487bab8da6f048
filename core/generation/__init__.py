"""Search over any decoder: greedy, beam, sampling, with token constraints."""
from core.generation.search import AllowedTokens, GenerationConfig, Hypothesis, LogitsProcessor, beam_search, generate

__all__ = ["AllowedTokens", "GenerationConfig", "Hypothesis", "LogitsProcessor", "beam_search", "generate"]
