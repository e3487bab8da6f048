"""The autoregressive loop for continuous outputs (spectrogram frames, forecast values): each
step's output is fed back as the next input until a stop flag fires or ``max_steps`` run out.

Token search (:mod:`core.generation.search`) picks discrete ids; here the model's own output is
the next input, so the loop only needs the model's step, how to feed an output back, and when
to stop. TTS uses it with a stop flag; a forecaster runs a fixed horizon (``stop_threshold=None``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

#: (step index, input [B, 1, F], state) -> (output [B, S, ...], stop logit [B] or None, new state)
StepFn = Callable[[int, torch.Tensor, Any], tuple[torch.Tensor, "torch.Tensor | None", Any]]


@dataclass
class ContinuousOutput:
    #: every step's output concatenated on dim 1: [B, steps * S, ...]
    outputs: torch.Tensor
    #: the stop logit of every step [B, steps] (None when the step gives none)
    stop_logits: torch.Tensor | None
    #: steps each row ran until its stop flag fired (inclusive), or all of them [B]
    lengths: torch.Tensor
    #: the state after the last step (to continue, or to read a recurrent state)
    state: Any = None


def generate_continuous(step_fn: StepFn, start: torch.Tensor, state: Any, max_steps: int,
                        stop_threshold: float | None = 0.5,
                        feedback: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ContinuousOutput:
    """Run ``step_fn`` from input ``start`` [B, 1, F] for at most ``max_steps`` steps.

    ``feedback`` turns a step's output into the next input (default: the output itself). With a
    ``stop_threshold``, a row stops once sigmoid(stop logit) exceeds it; the loop ends when every
    row has stopped (rows that stopped earlier keep running, their ``lengths`` say where to cut).
    """
    x, outputs, stops = start, [], []
    batch = start.shape[0]
    lengths = torch.full((batch,), max_steps, dtype=torch.long, device=start.device)
    running = torch.ones(batch, dtype=torch.bool, device=start.device)
    for i in range(max_steps):
        y, stop, state = step_fn(i, x, state)
        outputs.append(y)
        if stop is not None:
            stops.append(stop)
            if stop_threshold is not None:
                fired = running & (torch.sigmoid(stop) > stop_threshold)
                lengths = torch.where(fired, torch.full_like(lengths, i + 1), lengths)
                running = running & ~fired
                if not bool(running.any()):
                    break
        x = y if feedback is None else feedback(y)
    return ContinuousOutput(torch.cat(outputs, 1), torch.stack(stops, 1) if stops else None, lengths, state)
