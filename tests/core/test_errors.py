"""core.errors.entry_point as a user meets it: an expected error is ONE line and exit 2; ``--debug``
or ``SEQLAB_DEBUG=1`` brings the traceback back (for a bug report)."""
import pytest

from core.errors import EXIT_ERROR, CheckpointError, UserError, entry_point
from core.training.average import main as average


def test_expected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    missing = tmp_path / "gone.ckpt"
    with pytest.raises(SystemExit) as exit_:
        average([str(missing), "-o", str(tmp_path / "avg.ckpt")])
    assert exit_.value.code == EXIT_ERROR
    assert capsys.readouterr().err == f"error: {missing}: checkpoint not found\n"
    with pytest.raises(CheckpointError, match="checkpoint not found"):  # --debug: the exception itself
        average([str(missing), "-o", str(tmp_path / "avg.ckpt"), "--debug"])


def test_seqlab_debug_env_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DEBUG", "1")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        average([str(tmp_path / "gone.ckpt"), "-o", str(tmp_path / "avg.ckpt")])
    monkeypatch.setenv("SEQLAB_DEBUG", "0")
    with pytest.raises(SystemExit):
        average([str(tmp_path / "gone.ckpt"), "-o", str(tmp_path / "avg.ckpt")])


def test_bugs_keep_their_traceback_and_os_errors_name_the_file(tmp_path, capsys):
    @entry_point
    def broken(argv=None):
        raise KeyError("a bug")

    @entry_point
    def reads(argv=None):
        return (tmp_path / "nope.txt").read_text()

    with pytest.raises(KeyError):
        broken([])
    with pytest.raises(SystemExit):
        reads([])
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.txt'}: No such file or directory\n"
    assert issubclass(CheckpointError, UserError) and issubclass(UserError, ValueError)
