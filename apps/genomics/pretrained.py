"""Fine-tune from a pretrained DNA language model: the gene tagger's or a DNA property model's
encoder and base embeddings start from a ``dna_lm`` checkpoint (HyenaDNA's recipe), with
``--model.init_args.init_from LM.ckpt``; the head starts fresh.

Embedding rows are matched by token, so the two tokenizers need not number bases alike; the
stacks must match (same layers, mixers and width), and a mismatch is one error naming the file.
"""
from __future__ import annotations

import torch

from core.errors import CheckpointError
from core.models.transfer import load_decoder_into_encoder
from core.tokenizers import Tokenizer, tokenizer_from_json
from core.training.checkpoints import load_checkpoint


def initialise_from_lm(model: torch.nn.Module, path: str, tokenizer: Tokenizer) -> str:
    """Load ``path``'s decoder into ``model.encoder`` and its embeddings into ``model.embed``;
    returns a line saying what was copied."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("state_dict", {})
    decoder = {k[len("model.decoder."):]: v for k, v in state.items() if k.startswith("model.decoder.")}
    if not decoder or "dna" not in ckpt.get("tokenizers", {}):
        raise CheckpointError(f"{path}: not a DNA language model checkpoint (apps/genomics/configs/dna_lm.yaml)")
    try:
        copied = load_decoder_into_encoder(decoder, model.encoder)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(f"{path}: its decoder does not fit this encoder (it needs the same n_layers, mixer "
                              f"and d_model): {lines[-1][:200]}") from err
    source = tokenizer_from_json(ckpt["tokenizers"]["dna"])
    table = state["model.embed.weight"]
    weight = model.embed.weight
    if table.shape[1] != weight.shape[1]:
        raise CheckpointError(f"{path}: embeddings of width {table.shape[1]}, this model's are {weight.shape[1]}")
    shared = 0
    with torch.no_grad():
        for i in range(tokenizer.vocab_size):
            j = source.token_to_id(tokenizer.id_to_token(i))
            if j is not None:
                weight[i] = table[j]
                shared += 1
    return f"{path}: encoder initialised from the language model ({copied} tensors, {shared} token embeddings)"


def setup_from_lm(task, stage: str, tokenizer: str) -> None:
    """The tasks' ``setup`` hook: at the start of a fresh fit (not a resume, whose checkpoint
    restores every weight afterwards anyway), load ``task.init_from`` if it is set."""
    if stage == "fit" and task.init_from and task.trainer.ckpt_path is None:
        print(initialise_from_lm(task.model, task.init_from, task.tokenizers[tokenizer]))
