"""core.training's BaseTask and run_cli on a toy regression task: one loop logs losses and metrics,
checkpoints hold plain data in the documented layout, from_checkpoint rebuilds the recorded class
and refuses another one, runtime options given on the command line win, bad options are one line."""
from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MeanAbsoluteError

from core.errors import CheckpointError
from core.models import BackboneConfig
from core.tokenizers import CharTokenizer
from core.training import BaseTask, OptimConfig, as_config, run_cli
from core.training.checkpoints import load_checkpoint


@dataclass
class ToyConfig:
    d_in: int = 0  # linked from the data
    hidden: int = 8
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(d_model=8, n_layers=1, n_heads=2))


class ToyData(L.LightningDataModule):
    def __init__(self, d_in: int = 3, n: int = 64):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d_in, generator=g)
        self.data = TensorDataset(x, x.sum(1, keepdim=True))
        self.d_in = d_in

    def tokenizers_json(self):
        return {"chars": CharTokenizer.train(["abc"]).to_json()}

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=16)

    val_dataloader = test_dataloader = train_dataloader


class ToyTask(BaseTask):
    runtime_options = ("report_every",)

    def __init__(self, arch: ToyConfig = ToyConfig(), optim: OptimConfig | None = None, report_every: int = 1):
        super().__init__(optim)
        self.arch = as_config(ToyConfig, arch)
        self.report_every = report_every
        self.net = torch.nn.Sequential(torch.nn.Linear(self.arch.d_in, self.arch.hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(self.arch.hidden, 1))

    def configure_metrics(self):
        return {"mae": MeanAbsoluteError()}

    def losses(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(self.net(x), y), "l1": (self.net(x) - y).abs().mean()}

    def batch_size(self, batch):
        return len(batch[0])

    def update_metrics(self, metrics, batch, stage):
        x, y = batch
        metrics.update(self.net(x), y)
        return True


class OtherTask(ToyTask):
    pass


def cli(tmp_path, *args):
    return run_cli(ToyTask, ToyData, args=[*args, "--trainer.max_steps", "8", "--trainer.accelerator", "cpu",
                                           "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar",
                                           "false", "--model.optim.warmup_steps", "1"],
                   links=(("data.d_in", "model.arch.d_in"),))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    run = cli(root, "fit", "--model.arch.hidden", "6", "--model.report_every", "7")
    return root, run, run.trainer.checkpoint_callback.best_model_path


def test_mixed_precision_trains_with_gradient_clipping(tmp_path):
    """Lightning refuses to clip a fused optimizer's gradients under AMP: bf16-mixed falls back to the
    unfused AdamW, fp32 keeps the fused one."""
    for precision, fused in (("bf16-mixed", False), ("32-true", True)):
        run = cli(tmp_path / precision, "fit", "--trainer.precision", precision, "--trainer.gradient_clip_val", "0.5")
        assert run.trainer.global_step == 8
        assert run.trainer.optimizers[0].defaults["fused"] is fused


def test_one_loop_logs_losses_and_cloned_metrics(trained):
    root, run, _ = trained
    logged = run.trainer.logged_metrics
    assert {"train/loss", "train/l1", "val/loss", "val/l1", "val/mae"} <= set(logged)
    assert run.model.val_metrics is not run.model.test_metrics
    assert list(run.model.val_metrics.keys()) == ["val/mae"] and list(run.model.test_metrics.keys()) == ["test/mae"]
    # TensorBoard and CSV both, under default_root_dir
    assert list((root / "lightning_logs").rglob("events.out.tfevents*"))
    csv = next((root / "csv").rglob("metrics.csv")).read_text()
    assert "val/mae" in csv.splitlines()[0]


def test_checkpoint_layout_is_plain_data(trained):
    _, _, ckpt = trained
    data = load_checkpoint(ckpt)  # weights_only=True
    assert data["task_class"] == f"{ToyTask.__module__}.ToyTask"
    assert data["runtime_options"] == {"report_every": 7}
    assert "report_every" not in data["hyper_parameters"]
    assert data["hyper_parameters"]["arch"]["hidden"] == 6 and data["hyper_parameters"]["arch"]["d_in"] == 3
    assert data["hyper_parameters"]["arch"]["backbone"]["d_model"] == 8  # nested dataclasses as dicts
    assert set(data["tokenizers"]) == {"chars"}


def test_from_checkpoint_rebuilds_the_recorded_class(trained):
    _, run, ckpt = trained
    task = ToyTask.from_checkpoint(ckpt)
    assert type(task) is ToyTask and not task.training
    assert task.arch == run.model.arch and task.report_every == 7 and isinstance(task.arch.backbone, BackboneConfig)
    torch.testing.assert_close(task.net[0].weight, run.model.net[0].weight.cpu())
    assert task.tokenizers["chars"].encode("ab") == run.model.tokenizers["chars"].encode("ab")
    assert BaseTask.from_checkpoint(ckpt).report_every == 7  # the base class finds the subclass itself
    assert ToyTask.from_checkpoint(ckpt, report_every=2).report_every == 2
    with pytest.raises(CheckpointError, match=r"a ToyTask checkpoint .* not a OtherTask one"):
        OtherTask.from_checkpoint(ckpt)


def test_ckpt_path_restores_architecture_but_command_line_runtime_options_win(trained, tmp_path):
    _, _, ckpt = trained
    run = cli(tmp_path, "test", "--ckpt_path", ckpt, "--model.report_every", "3")
    assert run.model.arch.hidden == 6  # from the checkpoint, though the command line did not say it
    assert run.model.report_every == 3


def test_a_refused_option_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(tmp_path, "fit", "--model.arch.backbone.n_heads", "3")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].startswith("error: ") and "not divisible by n_heads=3" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_a_task_given_by_class_path_refusing_an_option_is_one_line(tmp_path, capsys):
    """Apps take ``model: BaseTask`` with a class_path: the line is the task's reason, not
    jsonargparse's "Does not validate against any of the Union subtypes"."""
    with pytest.raises(SystemExit) as exit_:
        run_cli(BaseTask, ToyData, args=["fit", "--model.class_path", f"{__name__}.ToyTask",
                                         "--model.init_args.arch.backbone.n_heads", "3",
                                         "--trainer.default_root_dir", str(tmp_path)],
                links=(("data.d_in", "model.init_args.arch.d_in"),), subclass_mode_model=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].startswith("error: command line: ") and "n_heads=3" in err[-1], err[-1]
    assert "Union" not in err[-1] and not any("Traceback" in line for line in err)


def test_as_config_rebuilds_nested_dataclasses():
    cfg = as_config(ToyConfig, {"hidden": 4, "backbone": {"d_model": 16, "n_heads": 4}})
    assert cfg.hidden == 4 and isinstance(cfg.backbone, BackboneConfig) and cfg.backbone.d_model == 16
    assert as_config(ToyConfig, None) == ToyConfig() and as_config(ToyConfig, cfg) is cfg
    with pytest.raises(TypeError, match="no field"):
        as_config(ToyConfig, {"hiden": 4})


def test_cosine_schedule_decays_by_the_end_of_a_time_budget(tmp_path):
    """A run bounded by max_time ends at a step nobody predicted: the cosine follows the clock, so the
    rate is near its floor when the budget stops training, though the step count (estimated from
    max_epochs) is far from its horizon. The checkpoint still loads as plain data."""
    run = run_cli(ToyTask, ToyData, args=[
        "fit", "--trainer.max_time", "00:00:00:01", "--trainer.max_epochs", "100000", "--trainer.limit_val_batches", "0",
        "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar",
        "false", "--model.optim.warmup_steps", "1", "--model.optim.schedule", "cosine", "--model.optim.lr", "0.01"],
        links=(("data.d_in", "model.arch.d_in"),))
    steps = run.trainer.global_step
    assert 0 < steps < 0.1 * run.trainer.estimated_stepping_batches
    assert run.trainer.optimizers[0].param_groups[0]["lr"] < 0.01 * 0.05
    ckpt = tmp_path / "end.ckpt"
    run.trainer.save_checkpoint(ckpt)
    assert load_checkpoint(ckpt)["global_step"] == steps
