"""Writing exports: the output folder must be new or empty (a UserError otherwise), and a graph is
written atomically: a failure mid-save leaves neither the file nor a temp file behind."""
import pytest

from core.errors import UserError
from core.export import new_output_dir, save_program, write_config


def test_output_folder_must_be_new_or_empty(tmp_path):
    assert new_output_dir(tmp_path / "a" / "b").is_dir()
    assert new_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"  # empty: fine
    (tmp_path / "a" / "b" / "decoder.onnx").write_text("x")
    with pytest.raises(UserError, match="b is not empty"):
        new_output_dir(tmp_path / "a" / "b")
    with pytest.raises(UserError, match="not empty"):
        new_output_dir(tmp_path / "a" / "b" / "decoder.onnx")  # a file is no folder to export into


class Program:
    """Stands in for torch.onnx.ONNXProgram: writes part of the file, then fails (or not)."""

    def __init__(self, fail: bool):
        self.fail = fail

    def save(self, path, external_data=False):
        with open(path, "w") as f:
            f.write("partial graph")
        if self.fail:
            raise RuntimeError("disk full")
        if external_data:
            with open(f"{path}.data", "w") as f:
                f.write("weights")


@pytest.mark.parametrize("external_data", [False, True])
def test_graph_is_written_atomically(tmp_path, external_data):
    with pytest.raises(RuntimeError, match="disk full"):
        save_program(Program(fail=True), tmp_path / "decoder.onnx", external_data)
    assert list(tmp_path.iterdir()) == []
    save_program(Program(fail=False), tmp_path / "decoder.onnx", external_data)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == (["decoder.onnx", "decoder.onnx.data"] if external_data else ["decoder.onnx"])
    write_config(tmp_path / "config.json", {"a": 1})
    assert (tmp_path / "config.json").read_text() == '{\n  "a": 1\n}'
