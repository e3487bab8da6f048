"""``python -m apps.translation.translate`` with the inputs and checkpoints a user gets wrong: output
line i answers input line i whatever characters a line holds, a bad line (invalid UTF-8, over the
model's source limit) gets an empty answer and a report while the rest is translated (exit 1), and a
missing, truncated or foreign checkpoint is one line naming the file (exit 2)."""
import io
import sys
from pathlib import Path

import pytest

from apps.translation.train import main as train_main
from apps.translation.translate import main as translate
from core.errors import EXIT_ERROR, EXIT_SKIPPED

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny G2P checkpoint, 2 steps: the commands' behaviour, not its quality, is under test."""
    root = tmp_path_factory.mktemp("translate_cli")
    cli = train_main(["fit", "--config", str(ROOT / "apps/translation/configs/tiny.yaml"),
                      "--data.cache_dir", str(root / "cache"), "--data.train_limit", "300",
                      "--trainer.default_root_dir", str(root), "--trainer.max_steps", "2",
                      "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"])
    path = cli.trainer.checkpoint_callback.last_model_path or cli.trainer.checkpoint_callback.best_model_path
    assert path and Path(path).is_file()
    return path


def run(argv, capsys, stdin: bytes | None = None, monkeypatch=None):
    """(exit status, stdout, stderr) of the command as a user sees them."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        translate(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


# the input: a form feed and U+2028 inside lines, which str.splitlines() also breaks at
ODD = "ab\x0ccd\nef\u2028gh\n\nij\x1c\x1dkl\u0085\r\nmn\n".encode()


def test_output_line_i_answers_input_line_i(ckpt, tmp_path, capsys, monkeypatch):
    words = tmp_path / "odd.txt"
    words.write_bytes(ODD)
    code, out, err = run(["--checkpoint", ckpt, "--input", str(words), "--max-len", "6"], capsys)
    assert code == 0 and err == ""
    lines = out.split("\n")
    assert len(lines) == 5 + 1 and lines[-1] == "" and lines[2] == ""  # 5 input lines, the blank one blank
    # the same bytes on stdin give the same answers
    assert run(["--checkpoint", ckpt, "--max-len", "6"], capsys, ODD, monkeypatch)[1] == out

    code, out, err = run(["--checkpoint", ckpt, "--input", str(words), "--beam", "2", "--nbest", "2",
                          "--max-len", "6"], capsys)
    assert code == 0
    rows = [row.split("\t") for row in out.splitlines()]
    assert [int(r[0]) for r in rows] == [1, 1, 2, 2, 4, 4, 5, 5]  # input line numbers, the blank line has none
    assert all(len(r) == 3 for r in rows)


def test_bad_lines_get_an_empty_answer_the_rest_is_translated(ckpt, tmp_path, capsys, monkeypatch):
    good = tmp_path / "good.txt"
    good.write_text("cat\ndog\n")
    code, expected, err = run(["--checkpoint", ckpt, "--input", str(good), "--max-len", "6"], capsys)
    assert code == 0 and err == ""
    cat, dog = expected.splitlines()

    data = b"cat\n" + b"a" * 1100 + b"\n\xff\xfe bad utf-8\ndog\n"  # tiny.yaml: 1024 source positions
    given = tmp_path / "mixed.txt"
    given.write_bytes(data)
    out_file = tmp_path / "out.txt"
    out_file.write_text("old answers\n")
    code, out, err = run(["--checkpoint", ckpt, "--input", str(given), "--output", str(out_file),
                          "--max-len", "6"], capsys)
    assert code == EXIT_SKIPPED and out == ""
    assert out_file.read_text().split("\n") == [cat, "", "", dog, ""]
    assert err.strip() == (f"warning: {given}: skipped 2 of 4 records "
                           "(invalid UTF-8: line 3; longer than 1024 tokens: line 2)")
    assert given.read_bytes() == data  # nothing the user gave is modified
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.txt", "mixed.txt", "out.txt"]  # no temp left

    # stdin: the same answers and the same report, named <stdin> (invalid UTF-8 used to pass silently)
    code, out, err = run(["--checkpoint", ckpt, "--max-len", "6"], capsys, data, monkeypatch)
    assert code == EXIT_SKIPPED and out.split("\n") == [cat, "", "", dog, ""]
    assert err.startswith("warning: <stdin>: skipped 2 of 4 records")

    # n-best: a skipped line has no rows, the others keep their line numbers
    code, out, err = run(["--checkpoint", ckpt, "--input", str(given), "--beam", "2", "--nbest", "2",
                          "--max-len", "6"], capsys)
    assert code == EXIT_SKIPPED and [int(r.split("\t")[0]) for r in out.splitlines()] == [1, 1, 4, 4]


def asr_checkpoint(path: Path) -> Path:
    """What a user may hand to the wrong command: a speech recognizer's checkpoint, saved as Lightning does."""
    from apps.speech.asr.model import ASRConfig
    from apps.speech.asr.task import SpeechRecognizer
    from core.models import BackboneConfig

    layer = dict(d_model=16, n_heads=2, dropout=0.0)
    model = SpeechRecognizer(ASRConfig(vocab_size=32, encoder=BackboneConfig(n_layers=1, **layer),
                                       predictor=BackboneConfig(n_layers=1, **layer), loss="ctc", joint_dim=16,
                                       subsampling_channels=8))
    return model.save_checkpoint(path)


@pytest.mark.parametrize("case", ["missing", "truncated", "not a checkpoint", "wrong app"])
def test_bad_checkpoint_is_one_line_naming_the_file(ckpt, tmp_path, capsys, monkeypatch, case):
    bad = tmp_path / "model.ckpt"
    if case == "truncated":  # a copy cut short (full disk, interrupted transfer)
        bad.write_bytes(Path(ckpt).read_bytes()[:50_000])
    elif case == "not a checkpoint":
        bad.write_text("hello\n")
    elif case == "wrong app":
        asr_checkpoint(bad)
    code, out, err = run(["--checkpoint", str(bad)], capsys, b"cat\n", monkeypatch)
    assert code == EXIT_ERROR and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(bad) in err, err
    assert "Traceback" not in err


def test_missing_input_file_is_one_line(ckpt, tmp_path, capsys):
    code, out, err = run(["--checkpoint", ckpt, "--input", str(tmp_path / "nope.txt")], capsys)
    assert code == EXIT_ERROR and err == f"error: {tmp_path / 'nope.txt'}: No such file or directory\n"


def test_several_checkpoints_decode_as_an_ensemble(ckpt, tmp_path, capsys):
    """A checkpoint ensembled with itself answers as it does alone (scores included); one with other
    tokenizers is refused in one line naming it."""
    words = tmp_path / "words.txt"
    words.write_text("cat\nphoneme\n\nzebra\n")
    args = ["--input", str(words), "--beam", "3", "--nbest", "2", "--max-len", "8"]
    alone, pair = run(["--checkpoint", ckpt, *args], capsys), run(["--checkpoint", ckpt, ckpt, *args], capsys)
    assert alone[0] == pair[0] == 0
    rows = [[r.split("\t") for r in out.splitlines()] for out in (alone[1], pair[1])]
    assert [[r[0], r[2]] for r in rows[0]] == [[r[0], r[2]] for r in rows[1]] and len(rows[0]) == 6
    assert all(abs(float(a[1]) - float(b[1])) < 1e-4 for a, b in zip(*rows))

    other_root = tmp_path / "other"
    cli = train_main(["fit", "--config", str(ROOT / "apps/translation/configs/tiny.yaml"),
                      "--data.cache_dir", str(other_root / "cache"), "--data.train_limit", "12",
                      "--trainer.default_root_dir", str(other_root), "--trainer.max_steps", "2",
                      "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"])
    other = cli.trainer.checkpoint_callback.last_model_path or cli.trainer.checkpoint_callback.best_model_path
    code, out, err = run(["--checkpoint", ckpt, other, *args], capsys)
    assert code == EXIT_ERROR and out == ""
    assert err.strip().splitlines() == [f"error: {other}: its tokenizers differ from {ckpt}'s; an ensemble needs the same ones"]
