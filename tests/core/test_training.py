"""Losses, schedules and checkpoint utilities of core.training."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.training import atomic_write, average_checkpoints, load_checkpoint, load_portable_weights, make_schedule, save_portable, token_loss
from core.training.checkpoints import AtomicCheckpointIO


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_token_loss_matches_cross_entropy(smoothing):
    torch.manual_seed(0)
    head = nn.Linear(8, 11, bias=False)
    hidden = torch.randn(3, 5, 8)
    targets = torch.randint(1, 11, (3, 5))
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    loss, nll, n = token_loss(hidden, head, targets, pad_id=0, smoothing=smoothing)
    logits = head(hidden).view(-1, 11)
    ref = F.cross_entropy(logits, targets.view(-1), ignore_index=0, label_smoothing=smoothing)
    ref_nll = F.cross_entropy(logits, targets.view(-1), ignore_index=0)
    assert n == int((targets != 0).sum())
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(nll, ref_nll)


def test_schedules():
    inv = make_schedule("inverse_sqrt", warmup=100, total=1000)
    assert inv(50) == pytest.approx(0.5) and inv(100) == pytest.approx(1.0) and inv(400) == pytest.approx(0.5)
    cos = make_schedule("cosine", warmup=10, total=110, min_ratio=0.1)
    assert cos(0) == pytest.approx(0.1) and cos(10) == pytest.approx(1.0)
    assert cos(60) == pytest.approx(0.55) and cos(110) == pytest.approx(0.1) and cos(500) == pytest.approx(0.1)
    timed = make_schedule("cosine", warmup=10, total=10**6, min_ratio=0.1, clock=lambda: 0.5)  # half the time spent
    assert timed(20) == pytest.approx(0.55) and cos(60) == pytest.approx(timed(60))
    assert make_schedule("cosine", 10, 110, 0.1, clock=lambda: 0.0)(60) == pytest.approx(0.55)  # steps lead
    assert make_schedule("cosine", 10, 110, 0.1, clock=lambda: 1.0)(20) == pytest.approx(0.1)
    # a time budget bounds the warmup: a model too slow to reach its warmup steps still peaks and decays
    assert make_schedule("cosine", 1000, 10**6, 0.1, clock=lambda: 0.05)(9) == pytest.approx(0.5)
    assert make_schedule("cosine", 1000, 10**6, 0.1, clock=lambda: 0.5)(100) == pytest.approx(0.55)
    assert make_schedule("cosine", 1000, 10**6, 0.1, clock=lambda: 1.0)(300) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        make_schedule("linear", 1, 2)


def test_average_checkpoints(tmp_path):
    paths = []
    for i, value in enumerate([1.0, 2.0, 6.0]):
        ckpt = {"state_dict": {"w": torch.full((2, 2), value), "steps": torch.tensor(i)}, "optimizer_states": [{}],
                "hyper_parameters": {"d": 4}}
        paths.append(tmp_path / f"{i}.ckpt")
        torch.save(ckpt, paths[-1])
    out = average_checkpoints(paths, tmp_path / "avg.ckpt")
    avg = load_checkpoint(out)
    torch.testing.assert_close(avg["state_dict"]["w"], torch.full((2, 2), 3.0))
    assert avg["state_dict"]["steps"].item() == 0 and avg["hyper_parameters"] == {"d": 4}
    assert "optimizer_states" not in avg and len(avg["averaged_from"]) == 3


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind


def test_checkpoint_io_refuses_pickled_code(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(1)}}, tmp_path / "ok.ckpt")
    assert io.load_checkpoint(tmp_path / "ok.ckpt")["state_dict"]["w"].item() == pytest.approx(1.0)
    torch.save({"obj": _Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception):
        io.load_checkpoint(tmp_path / "evil.ckpt")


class _Evil:
    pass


def test_portable_roundtrip(tmp_path):
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    save_portable(tmp_path, a, {"kind": "linear"}, {"src": '{"type": "char"}'})
    load_portable_weights(tmp_path, b)
    torch.testing.assert_close(a.weight, b.weight)
    assert json.loads((tmp_path / "config.json").read_text()) == {"kind": "linear"}
    assert (tmp_path / "tokenizer.src.json").exists()


def test_average_cli_picks_newest_and_refuses_overwrite(tmp_path):
    import os

    from core.training.average import main as average_main

    for i in range(4):
        torch.save({"state_dict": {"w": torch.full((1,), float(i))}}, tmp_path / f"s{i}.ckpt")
        os.utime(tmp_path / f"s{i}.ckpt", (1000 + i, 1000 + i))
    out = tmp_path / "out" / "avg.ckpt"
    average_main([str(tmp_path), "--last", "2", "-o", str(out)])
    assert load_checkpoint(out)["state_dict"]["w"].item() == pytest.approx(2.5)
    with pytest.raises(SystemExit):
        average_main([str(tmp_path), "--last", "2", "-o", str(out)])
