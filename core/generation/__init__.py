"""Search over any decoder (or an ensemble of them): greedy, beam, sampling, with token constraints; and the
autoregressive loop for continuous outputs (frames, values)."""
from core.generation.constraints import AllowedTokens, CallableConstraint, PrefixConstraint, TokenTrie
from core.generation.continuous import ContinuousOutput, generate_continuous
from core.generation.ensemble import Ensemble
from core.generation.search import GenerationConfig, Hypothesis, LogitsProcessor, beam_search, generate

__all__ = ["AllowedTokens", "CallableConstraint", "ContinuousOutput", "Ensemble", "GenerationConfig", "Hypothesis",
           "LogitsProcessor", "PrefixConstraint", "TokenTrie", "beam_search", "generate", "generate_continuous"]
