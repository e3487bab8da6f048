"""``python -m apps.genomics.train fit|validate|test|predict --config apps/genomics/configs/dna_lm.yaml``

A config names its task and data classes (``class_path``): DNA language modelling
(``apps.genomics.dna.task.DNALMTask``) or gene tagging (``apps.genomics.dna.task.GeneTagTask``),
both over ``apps.genomics.dna.data.DNADataModule``; or one label per sequence (peptide properties,
DNA sequence classes: ``apps.genomics.property.task.PropertyTask`` over
``apps.genomics.property.data.PropertyDataModule``).
"""
from __future__ import annotations

from core.training import BaseTask, run_cli

#: data-derived sizes copied into the model (a link a task lacks is skipped by jsonargparse)
LINKS = (
    ("data.vocab_size", "model.init_args.arch.vocab_size"),
    ("data.num_classes", "model.init_args.arch.num_classes"),  # gene tagging
    ("data.num_outputs", "model.init_args.arch.num_outputs"),  # sequence properties
    ("data.kind", "model.init_args.kind"),
    ("data.classes", "model.init_args.classes"),
    ("data.target_scale", "model.init_args.target_scale"),
    ("data.properties", "model.init_args.properties"),  # molecules (Regression Transformer)
)


def main(args: list[str] | None = None, run: bool = True):
    import lightning as L

    return run_cli(BaseTask, L.LightningDataModule, args=args, links=LINKS, run=run,
                   subclass_mode_model=True, subclass_mode_data=True)


if __name__ == "__main__":
    main()
