"""core.io.atomic_write as a user meets it: a killed writer's temp file is cleaned on the next write,
files get the umask's normal mode (not mkstemp's 0600), content is fsync'ed, a failed write keeps
the old file."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import io
from core.io import STALE_SECONDS, atomic_write, atomic_write_text, remove_stale_temps, temp_path
from core.training import AtomicCheckpointIO, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_files_get_the_umask_mode_like_open(tmp_path, umask, mask):
    umask(mask)
    atomic_write_text(tmp_path / "tokenizer.json", "{}")
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, tmp_path / "last.ckpt")
    (tmp_path / "plain.txt").write_text("x")
    want = 0o666 & ~mask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == want
    assert (tmp_path / "tokenizer.json").stat().st_mode & 0o777 == want
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == want


def test_content_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(io.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                   real_fsync(fd)))
    monkeypatch.setattr(io.os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    atomic_write_text(tmp_path / "out.txt", "hello\n")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].endswith(".tmp") and events[2][1] == str(tmp_path)
    assert (tmp_path / "out.txt").read_text() == "hello\n"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.full((3,), 7.0)}}, target)

    def dies_half_way(tmp):
        Path(tmp).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, dies_half_way)
    torch.testing.assert_close(load_checkpoint(target)["state_dict"]["w"], torch.full((3,), 7.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_kill_9_mid_write_leaves_a_temp_that_the_next_save_removes(tmp_path):
    """The issue's case: a checkpoint save killed mid-write. Lightning names checkpoints after their
    step, so the next save has another name; the dead writer's temp file goes all the same."""
    killed, following = tmp_path / "epoch=0-step=100.ckpt", tmp_path / "epoch=0-step=200.ckpt"
    script = ("import sys, time; from pathlib import Path; from core.io import atomic_write\n"
              "def slow(tmp):\n    Path(tmp).write_bytes(b'x' * 100000); print('writing', flush=True); time.sleep(60)\n"
              f"atomic_write({str(killed)!r}, slow)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "writing"
        temps = list(tmp_path.glob(".*.tmp"))
        assert len(temps) == 1 and temps[0].stat().st_size == 100000
    finally:
        proc.kill()
        proc.wait()
    assert not killed.exists() and temps[0].exists()  # what kill -9 leaves behind
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(1)}}, following)
    assert sorted(p.name for p in tmp_path.iterdir()) == [following.name]
    assert load_checkpoint(following)["state_dict"]["w"].item() == pytest.approx(1.0)


def test_stale_temps_old_or_of_dead_writers_go_live_ones_and_other_files_stay(tmp_path):
    target = tmp_path / "a"
    live = temp_path(target)  # this process: a writer in progress
    live.write_text("mine")
    parent = tmp_path / f".b.ckpt.{io._HOST}.{os.getppid()}.0badc0de.tmp"  # a live process on this host
    parent.write_text("theirs")
    old_legacy = tmp_path / ".a.k3j_x9q2.tmp"  # mkstemp's name, from before the pid was in the name
    fresh_legacy = tmp_path / ".a.p0o9i8u7.tmp"
    other_legacy = tmp_path / ".b.k3j_x9q2.tmp"  # another target's: not ours to judge by its name
    other_host = tmp_path / f".a.elsewhere.{os.getppid()}.12345678.tmp"  # its pid says nothing here
    old_other = tmp_path / f".c.ckpt.{io._HOST}.1.12345678.tmp"  # pid 1 lives, but nobody wrote for an hour
    user_file = tmp_path / ".notes.tmp"
    for p in (old_legacy, fresh_legacy, other_legacy, other_host, old_other, user_file):
        p.write_text("x")
    hour_ago = time.time() - 3600
    for p in (old_legacy, other_legacy, old_other, user_file):
        os.utime(p, (hour_ago, hour_ago))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_tmp = tmp_path / f".d.onnx.{io._HOST}.{dead.pid}.deadbeef.tmp"
    dead_tmp.write_text("x")

    removed = remove_stale_temps(target)
    assert sorted(removed) == sorted([old_legacy, old_other, dead_tmp])
    for kept in (live, parent, fresh_legacy, other_legacy, other_host, user_file):
        assert kept.exists(), kept
    # nothing touched for STALE_SECONDS belongs to a live writer, whoever wrote it
    assert other_host in remove_stale_temps(target, now=time.time() + STALE_SECONDS + 1)


def test_outputs_written_to_a_new_folder(tmp_path):
    atomic_write_text(tmp_path / "new" / "deeper" / "out.txt", "ok")
    assert (tmp_path / "new" / "deeper" / "out.txt").read_text() == "ok"



def test_a_refused_temp_file_is_reported_under_the_target_name(tmp_path, monkeypatch):
    def refuse(name, *args):
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(io.os, "open", refuse)
    with pytest.raises(PermissionError) as err:
        atomic_write_text(tmp_path / "out.txt", "x")
    assert err.value.filename == str(tmp_path / "out.txt")  # not ".out.txt.<host>.<pid>.<hex>.tmp"


def test_a_pipe_is_written_in_place(tmp_path):
    """``--output /dev/stdout`` or a named pipe cannot be renamed over: it is written directly."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == ["through the pipe\n"] and fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_folder_is_never_replaced_and_is_named(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match="out"):
        atomic_write_text(tmp_path / "out", "text")
    assert (tmp_path / "out").is_dir() and [p.name for p in tmp_path.iterdir()] == ["out"]
