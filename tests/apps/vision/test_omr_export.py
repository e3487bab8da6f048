"""OMR on onnxruntime: the exported graphs give the PyTorch model's memory and its exact greedy and
beam hypotheses for images of sizes the export never saw; the export and transcribe commands agree."""
import json

import pytest
import torch

from apps.vision.omr.model import OMRConfig, OMRModel
from apps.vision.omr.onnx import image_source
from core.export import OnnxEncoderDecoder, export_encoder_decoder
from core.generation import GenerationConfig, generate
from core.models import BackboneConfig

LAYER = dict(d_model=32, n_heads=2, dropout=0.0)


def padded_batch(sizes: list[tuple[int, int]], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sizes_t = torch.tensor(sizes)
    images = torch.zeros(len(sizes), 1, int(sizes_t[:, 0].max()), int(sizes_t[:, 1].max()))
    for row, (h, w) in zip(images, sizes):
        row[:, :h, :w] = (torch.rand(1, h, w, generator=gen) > 0.8).float()  # sparse "ink"
    return images, sizes_t


@pytest.mark.parametrize("trunk,decoder,encoder", [("patch", "attention", None), ("resnet", "gla", "attention")])
def test_onnx_equals_pytorch_for_unseen_image_sizes(trunk, decoder, encoder, tmp_path):
    torch.manual_seed(0)
    cfg = OMRConfig(vocab_size=40, trunk=trunk, patch=8,
                    encoder=BackboneConfig(n_layers=1, mixer=encoder, **LAYER) if encoder else None,
                    decoder=BackboneConfig(n_layers=2, mixer=decoder, position="rope" if decoder == "attention" else "none",
                                           max_len=64, **LAYER))
    model = OMRModel(cfg).eval()
    export_encoder_decoder(model, tmp_path, source=image_source(model))
    runner = OnnxEncoderDecoder(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["encoder_inputs"] == ["images", "sizes"] and config["step_only"] == (decoder != "attention")

    images, sizes = padded_batch([(70, 150), (41, 97), (64, 33)])  # none is the export's example size
    with torch.no_grad():
        memory, mask = model.encode(images, sizes)
    got = runner.encode(images, sizes)
    assert torch.equal(got["memory_mask"], mask)
    real = mask[..., None]
    torch.testing.assert_close(got["memory"] * real, memory * real, atol=1e-4, rtol=1e-4)  # padding cells are masked
    for search in (GenerationConfig(max_len=20), GenerationConfig(strategy="beam", beam_size=3, n_best=3, max_len=20)):
        with torch.no_grad():
            ours = generate(model, model.start(images, sizes), search)
        onnx = runner.generate((images, sizes), search)
        assert [[h.tokens for h in row] for row in onnx] == [[h.tokens for h in row] for row in ours]
        for a, b in zip(ours, onnx):
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-3)


def test_export_command_checks_parity_and_onnx_transcribes_the_same(corpus, omr_checkpoint, tmp_path, capsys):
    from apps.vision.export import main as export
    from apps.vision.transcribe import main as transcribe

    images = sorted(str(p) for p in (corpus / "images").glob("*.png"))[:3]
    out = tmp_path / "onnx"
    export(["--checkpoint", omr_checkpoint, "--out", str(out), "--images", *images, "--max-len", "24"])
    printed = capsys.readouterr().out
    assert "greedy (beam 1): 3/3" in printed and "beam (beam 3): 3/3" in printed
    assert {"encoder.onnx", "decoder.onnx", "config.json", "tokenizer.bekern.json"} <= {p.name for p in out.iterdir()}

    args = [*images, "--max-len", "24"]
    assert transcribe(["--checkpoint", omr_checkpoint, *args, "--output", str(tmp_path / "torch.krn")]) == 0
    assert transcribe(["--onnx", str(out), *args, "--output", str(tmp_path / "onnx.krn")]) == 0
    assert (tmp_path / "onnx.krn").read_text() == (tmp_path / "torch.krn").read_text()

    for argv, name in ((["--checkpoint", omr_checkpoint, "--out", str(out)], str(out)),  # not empty: never overwritten
                       (["--checkpoint", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "new")], "none.ckpt"),
                       (["--checkpoint", omr_checkpoint, "--out", str(tmp_path / "new2"), "--images",
                         str(tmp_path / "missing.png")], "missing.png")):
        with pytest.raises(SystemExit) as exit_:
            export(argv)
        assert exit_.value.code == 2 and name in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        transcribe(["--onnx", str(tmp_path / "nothing"), images[0]])
    assert exit_.value.code == 2 and "nothing" in capsys.readouterr().err
