"""DNA models: every config runs, loss accounting, the tagger ignores padding, length warm-up,
checkpoints round-trip through the CLI."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from apps.genomics.dna.data import IGNORE, DNADataModule
from apps.genomics.dna.model import Tagger, TaggerConfig
from apps.genomics.dna.task import DNALMTask, GeneTagTask
from apps.genomics.train import main
from core.errors import UserError
from core.models import BackboneConfig, LMConfig
from core.training import BaseTask

CONFIGS = sorted(p for p in Path("apps/genomics/configs").glob("*.yaml") if p.name.startswith(("dna", "gene")))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, tmp_path):
    cli = main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--data.init_args.window", "256",
                "--data.init_args.batch_size", "2", "--data.init_args.length_warmup", "[]",
                "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1


def test_lm_loss_counts_only_scored_bases():
    torch.manual_seed(0)
    task = DNALMTask(LMConfig(9, BackboneConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=64)))
    ids = torch.randint(4, 9, (2, 11))
    targets = ids.clone()
    targets[0, :4] = IGNORE  # a moved-back last tile: bases scored by the window before
    targets[1, 8:] = IGNORE  # padding
    batch = {"ids": ids, "targets": targets}
    logits = task.model(ids[:, :-1])
    gold = targets[:, 1:]
    expected = F.cross_entropy(logits.flatten(0, 1), gold.flatten(), ignore_index=IGNORE)
    out = task.losses(batch)
    assert out["bits_per_nt"].item() == pytest.approx(expected.item() / math.log(2), rel=1e-5)
    assert task.batch_size(batch) == int((gold != IGNORE).sum()) == 2 * 10 - 3 - 3


@pytest.mark.parametrize("mixer", ["attention", "mamba", "hyena"])
def test_tagger_ignores_padding(mixer):
    torch.manual_seed(0)
    enc = BackboneConfig(d_model=16, n_layers=2, n_heads=2, dropout=0.0, max_len=64, mixer=mixer,
                         position="rope" if mixer == "attention" else "none")
    model = Tagger(TaggerConfig(vocab_size=9, encoder=enc)).eval()
    ids = torch.randint(4, 9, (1, 20))
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], 1)
    mask = padded != 0
    with torch.no_grad():
        alone = model(ids)
        inside = model(padded, mask)[:, :20]
    torch.testing.assert_close(inside, alone, atol=1e-5, rtol=1e-4)


def test_length_warmup_grows_windows_and_needs_reloading(tmp_path):
    dm = DNADataModule(window=512, length_warmup=[128, 256], batch_size=2, windows_per_epoch=4)

    class Trainer:
        current_epoch, reload_dataloaders_every_n_epochs = 0, 1

    dm.trainer = Trainer()
    seen = []
    for epoch in range(3):
        Trainer.current_epoch = epoch
        batch = next(iter(dm.train_dataloader()))
        seen.append(tuple(batch["ids"].shape))
    assert seen == [(8, 129), (4, 257), (2, 513)]  # same bases per batch while the windows are short
    Trainer.reload_dataloaders_every_n_epochs = 0
    with pytest.raises(UserError, match="reload_dataloaders_every_n_epochs"):
        dm.train_dataloader()


@pytest.mark.parametrize("config,task_class,metric", [("dna_lm_tiny.yaml", DNALMTask, "test/bits_per_nt"),
                                                       ("gene_tag_tiny.yaml", GeneTagTask, "test/f1")])
def test_checkpoint_from_fit_tests_through_the_cli(config, task_class, metric, fitted, tmp_path):
    ckpt = fitted(config)
    assert isinstance(BaseTask.from_checkpoint(ckpt), task_class)
    tested = main(["test", "--config", f"apps/genomics/configs/{config}", "--ckpt_path", str(ckpt),
                   "--trainer.default_root_dir", str(tmp_path)])
    value = float(tested.trainer.callback_metrics[metric])
    assert (0 < value < 20) if metric.endswith("bits_per_nt") else (0 <= value <= 1)  # (4 steps: far from trained)


def test_generate_continues_prompts_in_order_and_reports_bad_ones(fitted, tmp_path, capsys):
    from apps.genomics.generate import main as generate_main

    out = tmp_path / "samples.fa"
    code = generate_main(["--checkpoint", str(fitted("dna_lm_tiny.yaml")), "--prompt", "ACGTAC", "--prompt", "HELLO",
                          "--prompt", "G", "--length", "30", "--samples", "2", "--output", str(out)])
    assert code == 1 and "skipped prompt prompt2" in capsys.readouterr().err
    records = out.read_text().split(">")[1:]
    names = [r.split("\n", 1)[0] for r in records]
    seqs = ["".join(r.split("\n")[1:]) for r in records]
    assert names == ["prompt1_sample1", "prompt1_sample2", "prompt2_sample1", "prompt2_sample2",
                     "prompt3_sample1", "prompt3_sample2"]
    assert seqs[2] == seqs[3] == ""
    for seq, prompt in zip(seqs[:2] + seqs[4:], ["ACGTAC"] * 2 + ["G"] * 2):
        assert seq.startswith(prompt) and len(seq) == len(prompt) + 30 and set(seq) <= set("ACGTN")
