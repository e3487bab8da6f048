"""``python -m apps.recommendation.train fit|validate|test --config apps/recommendation/configs/sasrec.yaml``

One command for the three models; a config names its task (``class_path``) and the batches it
reads (``data.kind``):

1. ``rqvae.yaml``: :class:`~apps.recommendation.task.RQVAETask` on the item embeddings; ``fit``
   writes the semantic-ID table ``semantic_ids.pt`` (``model.init_args.ids_out``);
2. ``tiger.yaml``: :class:`~apps.recommendation.task.TigerTask` over that table
   (``data.semantic_ids``);
3. ``sasrec.yaml``: :class:`~apps.recommendation.task.SASRecTask` over item ids.

The backbones are core configs, so ``--model.init_args.backbone.mixer mamba`` (SASRec) or
``--model.init_args.encoder.mixer mamba --model.init_args.decoder.mixer mamba`` (TIGER) is one line.
"""
from __future__ import annotations

from apps.recommendation.data import RecDataModule
from core.training import BaseTask, run_cli

#: data-derived sizes copied into the model (a link a task lacks is skipped by jsonargparse)
LINKS = (
    ("data.n_items", "model.init_args.n_items"),
    ("data.max_history", "model.init_args.max_history"),  # SASRec
    ("data.vocab_size", "model.init_args.vocab_size"),  # TIGER
    ("data.id_length", "model.init_args.id_length"),
    ("data.token_offset", "model.init_args.token_offset"),
    ("data.embedding_dim", "model.init_args.input_dim"),  # RQ-VAE
)


def main(args: list[str] | None = None, run: bool = True):
    return run_cli(BaseTask, RecDataModule, args=args, links=LINKS, run=run, subclass_mode_model=True)


if __name__ == "__main__":
    main()
