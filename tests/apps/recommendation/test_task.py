"""The recommendation models through the CLI: every config runs, SASRec's test metrics equal a
full ranking recomputed by hand, TIGER's constrained beam search returns distinct real items, the
mixer is one line, the recommend command prints K titles, bad input is one line."""
from pathlib import Path

import pytest
import torch

from apps.recommendation.data import Histories, RecDataModule, collate
from apps.recommendation.export import OnnxTiger
from apps.recommendation.interactions import Example
from apps.recommendation.export import main as export_main
from apps.recommendation.metrics import ranks_from_scores
from apps.recommendation.recommend import main as recommend_main
from apps.recommendation.recommend import recommend
from apps.recommendation.semantic_ids import SemanticIds
from apps.recommendation.task import SASRecTask, TigerTask
from apps.recommendation.train import main as train_main
from core.errors import UserError
from core.training import datamodule_from_checkpoint

CONFIGS = sorted(Path("apps/recommendation/configs").glob("*.yaml"))
FAST = ["--trainer.fast_dev_run", "1"]


@pytest.fixture(scope="module")
def ids_path(tmp_path_factory):
    """The tiny RQ-VAE stage: trains and writes the semantic-ID table TIGER reads."""
    root = tmp_path_factory.mktemp("rqvae")
    cli = train_main(["fit", "--config", "apps/recommendation/configs/rqvae_tiny.yaml",
                      "--model.init_args.ids_out", str(root / "ids.pt"), "--trainer.default_root_dir", str(root)])
    assert float(cli.trainer.callback_metrics["val/collision_rate"]) < 1
    return root / "ids.pt"


def _extra(config: Path, ids_path: Path, tmp_path: Path) -> list[str]:
    if "tiger" in config.name:
        return ["--data.semantic_ids", str(ids_path)]
    if "rqvae" in config.name:
        return ["--model.init_args.ids_out", str(tmp_path / "ids.pt")]
    return []


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, ids_path, tmp_path):
    cli = train_main(["fit", "--config", str(config), *FAST, *_extra(config, ids_path, tmp_path),
                      "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    if "rqvae" in config.name:
        assert SemanticIds.load(tmp_path / "ids.pt").n_items == 1682


def test_semantic_id_table_is_one_id_per_item(ids_path):
    ids = SemanticIds.load(ids_path)
    assert ids.n_items == 1682 and ids.levels == 2 and ids.codes_per_level == 32


def test_sasrec_test_metrics_equal_full_ranking_by_hand(tmp_path):
    tiny = "apps/recommendation/configs/sasrec_tiny.yaml"
    fit = train_main(["fit", "--config", tiny, "--trainer.default_root_dir", str(tmp_path)])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    tested = train_main(["test", "--config", tiny, "--ckpt_path", ckpt, "--trainer.default_root_dir", str(tmp_path)])
    m = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    task = SASRecTask.from_checkpoint(ckpt)
    batch = next(iter(RecDataModule(batch_size=32).test_dataloader()))  # the tiny config tests one batch
    with torch.no_grad():
        h = task.model.decoder(task.model.embed(batch["history"]))[0]
        last = h[torch.arange(32), batch["length"] - 1]
        scores = last @ task.model.embed.weight.T  # tied output: every item's embedding
    scores[:, 0] = float("-inf")
    ranks = ranks_from_scores(scores, batch["target"])
    for k in (5, 10):
        assert m[f"test/recall@{k}"] == pytest.approx(float((ranks < k).float().mean()), abs=1e-6)
        ndcg = torch.where(ranks < k, 1 / torch.log2(ranks.float() + 2), torch.zeros(32)).mean()
        assert m[f"test/ndcg@{k}"] == pytest.approx(float(ndcg), abs=1e-5)
    top = scores.topk(10).indices
    assert m["test/coverage@10"] == pytest.approx(len(top.unique()) / 1682, abs=1e-6)


@pytest.fixture(scope="module")
def tiger(ids_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiger")
    fit = train_main(["fit", "--config", "apps/recommendation/configs/tiger_tiny.yaml",
                      "--data.semantic_ids", str(ids_path), "--trainer.default_root_dir", str(root)])
    return fit


def test_tiger_constrained_beam_returns_distinct_real_items(tiger, ids_path):
    task = TigerTask.from_checkpoint(tiger.trainer.checkpoint_callback.best_model_path)
    ids = SemanticIds.load(ids_path)
    batch = next(iter(tiger.datamodule.val_dataloader()))
    lists = task.top_k(batch, 10)
    assert lists.shape == (16, 10) and bool(((lists >= 1) & (lists <= 1682)).all())
    assert all(len(set(row)) == 10 for row in lists.tolist())
    real = {tuple(r) for r in ids.to_tokens(tiger.datamodule.token_offset).tolist()}
    assert all(tuple(t) in real for row in task.generated(batch, 10) for t in row)
    share = float(tiger.trainer.callback_metrics["val/valid_share"])
    assert 0.0 <= share <= 1.0


def test_recommend_prints_k_titles_and_refuses_unknown_users(tiger, capsys):
    ckpt = tiger.trainer.checkpoint_callback.best_model_path
    assert recommend_main(["--checkpoint", ckpt, "--user", "1", "--k", "7"]) == 0
    out = capsys.readouterr().out.splitlines()
    ranked = [line for line in out if line[:4].strip().rstrip(".").isdigit()]
    assert len(ranked) == 7 and "Aristocats, The" in "\n".join(out)  # user 1's last item
    with pytest.raises(SystemExit) as exit_:
        recommend_main(["--checkpoint", ckpt, "--user", "no-such-user"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-user" in err[0]


def test_recommendations_leave_out_what_the_user_has(tiger):
    """User 1 has 272 of the 1,682 films: by default none of them comes back; include_seen is the
    search over every item."""
    ckpt = tiger.trainer.checkpoint_callback.best_model_path
    task, dm = TigerTask.from_checkpoint(ckpt), datamodule_from_checkpoint(RecDataModule, ckpt)
    seen = set(dm.full_history("1"))
    assert len(seen) == 272
    fresh = recommend(task, dm, "1", 20)
    assert len(set(fresh)) == 20 and not seen & set(fresh)
    rows = Histories([Example("1", tuple(dm.full_history("1")[-20:]), 0)], task.item_tokens, dm.user_tokens)
    with torch.no_grad():  # include_seen: the search over every item
        assert recommend(task, dm, "1", 20, include_seen=True) == task.top_k(collate([rows[0]]), 20)[0].tolist()
    with pytest.raises(UserError, match="1410 items left"):
        recommend(task, dm, "1", 1411)


def test_onnx_constrained_beam_decode_matches_pytorch(tiger, tmp_path, capsys):
    """The whole trie-constrained beam search through onnxruntime: the same top-10 items for every
    user of a padded batch (histories of different lengths), scores within 1e-4."""
    ckpt = tiger.trainer.checkpoint_callback.best_model_path
    export_main(["--checkpoint", ckpt, "--out", str(tmp_path / "onnx"), "--samples", "12"])
    assert "12/12 top-10 lists identical" in capsys.readouterr().out
    runner, task = OnnxTiger(tmp_path / "onnx"), TigerTask.from_checkpoint(ckpt)
    data = tiger.datamodule.dataset("test")
    rows = [data[i] for i in range(6)]
    for row, keep in zip(rows[:3], (1, 4, 9)):  # shorter histories: padded rows in one batch
        row["history"] = row["history"][-keep:]
        row["src"] = torch.cat([row["src"][:1], row["src"][1:][-keep * task.id_length:]])
    batch = collate(rows)
    with torch.no_grad():
        assert torch.equal(runner.top_k(batch["src"], 10), task.top_k(batch, 10))
    assert runner.item_ids[1:] == list(tiger.datamodule.sequences.item_ids[1:])


def test_export_refuses_sasrec_and_a_used_folder(tiger, tmp_path, capsys):
    sasrec = train_main(["fit", "--config", "apps/recommendation/configs/sasrec_tiny.yaml", *FAST,
                         "--trainer.default_root_dir", str(tmp_path)])
    sasrec_ckpt = tmp_path / "sasrec.ckpt"
    sasrec.trainer.save_checkpoint(sasrec_ckpt)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    for argv, words in ((["--checkpoint", str(sasrec_ckpt), "--out", str(tmp_path / "o")], "SASRecTask"),
                        (["--checkpoint", tiger.trainer.checkpoint_callback.best_model_path,
                          "--out", str(tmp_path / "used")], "used")):
        with pytest.raises(SystemExit) as exit_:
            export_main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0]
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("options", [
    ["--config", "apps/recommendation/configs/sasrec_tiny.yaml", "--model.init_args.backbone.mixer", "mamba"],
    ["--config", "apps/recommendation/configs/tiger_tiny.yaml", "--model.init_args.encoder.mixer", "mamba"],
], ids=["sasrec-mamba", "tiger-mamba"])
def test_mixer_is_one_config_line(options, ids_path, tmp_path):
    cli = train_main(["fit", *options, *FAST, "--data.semantic_ids", str(ids_path),
                      "--trainer.default_root_dir", str(tmp_path)])
    assert any("mamba" in type(m).__name__.lower() for m in cli.model.modules())


def test_bad_data_options_are_one_line(tmp_path, ids_path):
    with pytest.raises(UserError, match="nope.inter"):
        RecDataModule(inter=str(tmp_path / "nope.inter"))
    with pytest.raises(UserError, match="data.semantic_ids"):
        RecDataModule(kind="semantic_ids")
    with pytest.raises(UserError, match="min_user_events"):
        RecDataModule(min_user_events=2)
    wrong = tmp_path / "few.pt"
    SemanticIds(SemanticIds.load(ids_path).ids[:10], 32).save(wrong)
    with pytest.raises(UserError, match="10 semantic IDs for 1682 items"):
        RecDataModule(kind="semantic_ids", semantic_ids=str(wrong)).item_tokens()


def test_popularity_command_prints_the_baseline_and_refuses_a_bad_log(tmp_path, capsys):
    from apps.recommendation.popularity import main as popularity_main
    from apps.recommendation.task import evaluate_popularity

    assert popularity_main([]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    for name, value in evaluate_popularity(RecDataModule()).items():
        assert float(printed[name]) == pytest.approx(value, abs=1e-4)
    bad = tmp_path / "bad.inter"
    bad.write_text("a\tb\n")
    with pytest.raises(SystemExit) as exit_:
        popularity_main(["--inter", str(bad)])
    assert exit_.value.code == 2 and "bad.inter" in capsys.readouterr().err
