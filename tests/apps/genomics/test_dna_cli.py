"""The DNA commands on tiny fitted checkpoints: ONNX export (the LM's generation loop and the
tagger, against PyTorch), predict (whole sequences tiled as evaluation tiles them, GFF and
embeddings, bad entries keeping their rows), and the options a user can get wrong."""
import math

import numpy as np
import pytest
import torch

from apps.genomics.dna.data import collate
from apps.genomics.dna.model import TaggerConfig
from apps.genomics.dna.onnx import PARITY_ATOL, OnnxTagger, lm_parity, tagger_parity
from apps.genomics.dna.task import DNALMTask, GeneTagTask
from apps.genomics.export import main as export_main
from apps.genomics.genes import GENE_LABELS, coding_stretches, paint_cds, pyrodigal_labels
from apps.genomics.genome import Segment, bundled_fasta
from apps.genomics.predict import Predictor
from apps.genomics.predict import main as predict_main
from apps.genomics.train import main as train_main
from core.data.readers import read_fasta
from core.export import OnnxDecoderLM


@pytest.fixture(scope="module")
def genome() -> str:
    records, _ = read_fasta(bundled_fasta())
    return records[0].sequence


def random_ids(task, shape, seed=0):
    tok = task.tokenizers["dna"]
    bases = [tok.token_to_id(b) for b in "ACGT"]
    pick = torch.randint(0, 4, shape, generator=torch.Generator().manual_seed(seed))
    return torch.tensor(bases)[pick]


def test_coding_stretches_invert_painted_genes():
    labels = np.zeros(400, dtype=np.int64)
    genes = [(10, 99, 1, 0), (120, 209, -1, 0), (250, 330, 1, 2), (340, 390, -1, 1)]
    for start, end, strand, phase in genes:
        paint_cds(labels, start, end, strand, phase)
    assert coding_stretches(labels) == genes
    assert coding_stretches(labels, min_length=60) == genes[:3]


def test_coding_stretches_give_back_pyrodigal_labels(genome):
    true, _ = pyrodigal_labels(genome[:60000])
    again = np.zeros_like(true)
    for start, end, strand, phase in coding_stretches(true):
        paint_cds(again, start, end, strand, phase)
    assert (again == true).all()  # (touching genes on one strand merge; their frames still match)


def test_lm_export_runs_generation_like_pytorch(fitted, tmp_path, capsys):
    ckpt = fitted("dna_lm_tiny.yaml")
    out = tmp_path / "onnx"
    export_main(["--checkpoint", ckpt, "--out", str(out), "--length", "96", "--samples", "2"])  # exits 1 on mismatch
    assert "4/4 identical" in capsys.readouterr().out
    task = DNALMTask.from_checkpoint(ckpt)
    assert lm_parity(task, OnnxDecoderLM(out), random_ids(task, (3, 50))) <= PARITY_ATOL


def test_tagger_export_matches_pytorch_on_a_padded_batch(fitted, tmp_path):
    ckpt = fitted("gene_tag_tiny.yaml")
    out = tmp_path / "onnx"
    export_main(["--checkpoint", ckpt, "--out", str(out), "--length", "96", "--samples", "2"])
    task, runner = GeneTagTask.from_checkpoint(ckpt), OnnxTagger(out)
    assert runner.labels == list(GENE_LABELS)
    ids = random_ids(task, (3, 150), seed=1)  # a length the export never saw
    batch = collate([{"ids": ids[0], "skip": torch.tensor(0)}, {"ids": ids[1, :90], "skip": torch.tensor(0)},
                     {"ids": ids[2, :150], "skip": torch.tensor(0)}])
    check = tagger_parity(task, runner, batch)
    assert check["max_abs_diff"] <= PARITY_ATOL and check["label_mismatch"] == 0


def test_tagger_predictions_tile_long_sequences_window_by_window(fitted, genome):
    task = GeneTagTask.from_checkpoint(fitted("gene_tag_tiny.yaml"))
    predictor = Predictor(task, window=64, batch_size=3)
    seq = genome[1000:1000 + 300]  # five windows, the last moved back to end at the sequence's end
    tokens = predictor.encode(seq)
    pred = predictor(Segment("x", tokens, None))
    with torch.no_grad():
        for start, skip in ((0, 0), (64, 0), (128, 0), (192, 0), (236, 20)):  # the last scores [256, 300)
            window = torch.from_numpy(tokens[start:start + 64])[None]
            want = task.model(window).argmax(-1)[0].numpy()
            assert (pred.labels[start + skip:start + 64] == want[skip:]).all()
        features = task.model.features(torch.from_numpy(tokens[:64])[None])[0].mean(0)
    short = predictor(Segment("y", tokens[:64], None))
    assert np.allclose(short.embedding, features.numpy(), atol=1e-5)


def test_lm_bits_per_nt_equal_the_task_loss(fitted, genome):
    task = DNALMTask.from_checkpoint(fitted("dna_lm_tiny.yaml"))
    predictor = Predictor(task, window=127, batch_size=2)
    tokens = predictor.encode(genome[5000:5128])  # one window of 128 bases
    pred = predictor(Segment("x", tokens, None))
    batch = collate([{"ids": torch.from_numpy(tokens), "skip": torch.tensor(0)}])
    with torch.no_grad():
        bits = float(task.losses(batch)["bits_per_nt"])
    assert pred.scored == 127 and math.isclose(pred.nll / pred.scored / math.log(2), bits, rel_tol=1e-5)


def test_predict_writes_a_row_per_entry_and_genes_as_gff(fitted, genome, tmp_path, capsys):
    ckpt = fitted("gene_tag_tiny.yaml")
    fasta = tmp_path / "in.fa"
    fasta.write_text(f">good1 a contig\n{genome[:700]}\n>bad\nACGTXQ\n>\n>empty\n>good2\n{genome[900:1300].lower()}\n")
    before = fasta.read_bytes()
    table, gff, emb = tmp_path / "t.tsv", tmp_path / "g.gff3", tmp_path / "e.npy"
    code = predict_main(["--checkpoint", ckpt, "--fasta", str(fasta), "--output", str(table), "--gff", str(gff),
                         "--embeddings", str(emb), "--min-gene", "20"])
    assert code == 1 and "in.fa: skipped 3 of 5 records" in capsys.readouterr().err
    assert fasta.read_bytes() == before
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    assert rows[0] == ["line", "id", "length", "coding_fraction", "genes", "status"]
    assert [(r[0], r[1], r[-1]) for r in rows[1:]] == [("1", "good1", "ok"), ("3", "bad", "not DNA: 'Q' 'X'"),
                                                       ("5", "", "empty id"), ("6", "", "empty sequence"),
                                                       ("7", "good2", "ok")]
    vectors = np.load(emb)
    assert vectors.shape == (5, task_width(ckpt)) and np.isnan(vectors).any(1).tolist() == [False, True, True, True, False]

    task = GeneTagTask.from_checkpoint(ckpt)
    window = 128  # the tiny config's training window, which predict tiles by
    pred = Predictor(task, window, 8)(Segment("good1", Predictor(task, window, 8).encode(genome[:700]), None))
    want = [f"good1\tseqlab\tCDS\t{a + 1}\t{b + 1}\t.\t{'+' if s > 0 else '-'}\t{p}"
            for a, b, s, p in coding_stretches(pred.labels, 20)]
    got = [line.rsplit("\t", 1)[0] for line in gff.read_text().splitlines() if line.startswith("good1\t")]
    assert got == want and int(rows[1][4]) == len(want)


def task_width(ckpt):
    return GeneTagTask.from_checkpoint(ckpt).arch.encoder.d_model


def test_held_out_agreement_is_what_train_test_reports(fitted, tmp_path, capsys):
    ckpt = fitted("gene_tag_tiny.yaml")
    tested = train_main(["test", "--config", "apps/genomics/configs/gene_tag_tiny.yaml", "--ckpt_path", ckpt,
                         "--data.init_args.eval_limit", "null", "--trainer.limit_test_batches", "1.0",
                         "--trainer.default_root_dir", str(tmp_path)])
    capsys.readouterr()
    assert predict_main(["--checkpoint", ckpt, "--plot", str(tmp_path / "track.png")]) == 0
    printed = capsys.readouterr().out
    scores = dict(part.rsplit(" ", 1) for part in printed.split("pyrodigal: ")[1].splitlines()[0].split(", "))
    for name in ("f1", "mcc", "coding_f1"):
        assert math.isclose(float(scores[name]), float(tested.trainer.callback_metrics[f"test/{name}"]), abs_tol=1e-4)
    assert (tmp_path / "track.png").stat().st_size > 10_000


@pytest.mark.parametrize("config,argv,message", [
    ("dna_lm_tiny.yaml", ["--fasta", "IN", "--gff", "OUT"], "--gff needs a gene tagger"),
    ("gene_tag_tiny.yaml", ["--fasta", "IN", "--plot", "OUT"], "leave out --fasta"),
    ("gene_tag_tiny.yaml", ["--fasta", "IN", "--window", "100000"], "at most 256 bases"),
    ("gene_tag_tiny.yaml", ["--output", "OUT"], "give one"),
    ("gene_tag_tiny.yaml", ["--fasta", "BAD"], "bad.fa: no usable records"),
])
def test_predict_options_a_user_can_get_wrong(config, argv, message, fitted, tmp_path, capsys):
    (tmp_path / "in.fa").write_text(">a\nACGT\n")
    (tmp_path / "bad.fa").write_text(">a\nHELLO\n>\n")
    names = {"IN": str(tmp_path / "in.fa"), "BAD": str(tmp_path / "bad.fa"), "OUT": str(tmp_path / "out")}
    with pytest.raises(SystemExit) as exit_:
        predict_main(["--checkpoint", fitted(config)] + [names.get(x, x) for x in argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_export_options_a_user_can_get_wrong(fitted, tmp_path, capsys):
    ckpt = fitted("gene_tag_tiny.yaml")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    for argv, message in ((["--checkpoint", ckpt, "--out", str(tmp_path / "full"), "--length", "96"], "not empty"),
                          (["--checkpoint", ckpt, "--out", str(tmp_path / "a"), "--length", "4096"], "at most 256"),
                          (["--checkpoint", str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "b")], "junk.ckpt")):
        with pytest.raises(SystemExit) as exit_:
            export_main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine" and not (tmp_path / "a").exists()


def test_tagger_fine_tunes_from_the_language_model(fitted, tmp_path, capsys):
    from apps.genomics.pretrained import initialise_from_lm
    from core.errors import CheckpointError

    lm_ckpt = fitted("dna_lm_tiny.yaml")  # a Hyena LM, d 32 x 2
    lm = DNALMTask.from_checkpoint(lm_ckpt)
    cli = train_main(["fit", "--config", "apps/genomics/configs/gene_tag_tiny.yaml", "--trainer.max_steps", "1",
                      "--model.init_args.arch.encoder.mixer", "hyena", "--model.init_args.init_from", lm_ckpt,
                      "--trainer.default_root_dir", str(tmp_path)])
    assert "encoder initialised from the language model" in capsys.readouterr().out
    tagger = cli.model
    fresh = GeneTagTask(tagger.arch)  # same architecture, loaded directly: every weight is the LM's
    fresh.set_tokenizers(tagger.tokenizers_json)
    initialise_from_lm(fresh.model, lm_ckpt, fresh.tokenizers["dna"])
    decoder = lm.model.decoder.state_dict()
    for key, value in fresh.model.encoder.state_dict().items():
        assert torch.equal(value, decoder[key.replace(".fwd.", ".").replace(".bwd.", ".")]), key
    mine, theirs = fresh.tokenizers["dna"], lm.tokenizers["dna"]
    for base in "ACGTN":  # rows matched by token
        assert torch.equal(fresh.model.embed.weight[mine.token_to_id(base)], lm.model.embed.weight[theirs.token_to_id(base)])
    wider = GeneTagTask(TaggerConfig(vocab_size=tagger.arch.vocab_size))  # the default encoder: d 256
    with pytest.raises(CheckpointError, match="does not fit this encoder"):
        initialise_from_lm(wider.model, lm_ckpt, mine)
    with pytest.raises(SystemExit) as exit_:
        train_main(["fit", "--config", "apps/genomics/configs/gene_tag_tiny.yaml", "--trainer.max_steps", "1",
                    "--model.init_args.init_from", lm_ckpt, "--trainer.default_root_dir", str(tmp_path / "mamba")])
    assert exit_.value.code == 2 and "does not fit this encoder" in capsys.readouterr().err
