"""Plot where the decoder looks: cross-attention of each output token over the source.

    python -m apps.translation.plot --checkpoint CKPT --text pronunciation -o attention.png

For G2P a good model shows a near-diagonal, monotonic alignment of phonemes to letters; for MT
the alignment shows reordering. The weights are each decoder layer's cross-attention weights
(:meth:`core.mixers.CrossAttention.recording`) while the model reads its own greedy output,
averaged over heads.
"""
from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

import torch

from apps.translation.task import TranslationModel
from core.generation import GenerationConfig


@torch.no_grad()
def cross_attention(model: TranslationModel, text: str, max_len: int = 64) -> tuple[list[str], list[str], torch.Tensor]:
    """(source tokens, output tokens, weights [layers, out_len, src_len]) for ``text``."""
    src_tok, tgt_tok, net = model.src_tokenizer, model.tgt_tokenizer, model.model
    src = torch.tensor([src_tok.encode(text) + [src_tok.eos_id]])
    out = model.translate_ids(src, GenerationConfig(max_len=max_len))[0][0].tokens
    tgt_in = torch.tensor([[net.bos_id, *out]])
    with ExitStack() as stack:
        records = [stack.enter_context(layer.cross.recording()) for layer in net.decoder.stack.layers]
        memory, mask = net.encode(src)
        net.decoder(net.tgt_embed(tgt_in), memory=net.decoder.memory_states(memory, mask))
    captured = [r[0].mean(1)[0] for r in records]  # average over heads -> [out, src] per layer
    src_labels = [src_tok.id_to_token(i) or "?" for i in src[0].tolist()]
    out_labels = [tgt_tok.id_to_token(i) or "?" for i in out] + ["</s>"]
    return src_labels, out_labels, torch.stack(captured)


def plot(src: list[str], out: list[str], weights: torch.Tensor, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = weights.shape[0]
    fig, axes = plt.subplots(1, n, figsize=(2.2 + 0.35 * len(src) * n, 1.5 + 0.3 * len(out)), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(weights[i].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(src)), src, fontsize=8)
        ax.set_yticks(range(len(out)), out if i == 0 else [""] * len(out), fontsize=8)
        ax.set_title(f"layer {i + 1}", fontsize=9)
    fig.suptitle(title or "cross-attention (mean over heads)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("-o", "--output", default="attention.png")
    a = p.parse_args(argv)
    model = TranslationModel.from_checkpoint(a.checkpoint)
    src, out, weights = cross_attention(model, a.text)
    path = plot(src, out, weights, a.output, f"{a.text!r} -> {' '.join(out[:-1])}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
