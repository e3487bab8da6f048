"""Sequence properties (peptide regression and classification, DNA classes): the data a user
brings and its bad records, the bundled proteins, the pooled model's padding invariance, the
commands (train, predict, export) and ONNX parity."""
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.genomics.export import main as export_main
from apps.genomics.predict import main as predict_main
from apps.genomics.property.data import PropertyDataModule, collate
from apps.genomics.property.model import PropertyConfig, PropertyModel
from apps.genomics.property.onnx import OnnxProperty, property_parity
from apps.genomics.property.task import PropertyTask
from apps.genomics.proteins import STABLE_BELOW, bundled_proteins, protparam
from apps.genomics.train import main as train_main
from core.data.reports import DataWarning
from core.errors import DataError, UserError
from core.models import BackboneConfig

CONFIGS = sorted(Path("apps/genomics/configs").glob("peptide*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, tmp_path):
    cli = train_main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--data.init_args.batch_size", "2",
                      "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1


def test_bundled_proteins_are_split_by_genome_region():
    proteins = bundled_proteins()
    assert len(proteins) > 2000 and not any("*" in p.sequence for p in proteins)
    assert sum(p.sequence[0] != "M" for p in proteins) <= 2  # (genes cut by the chromosome's ends)
    dm = PropertyDataModule(target="stability", max_length=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # (proteins over 400 residues)
        splits = dm.splits()
    assert dm.kind == "classification" and dm.classes == ["stable", "unstable"]
    test_ids = {e.origin for e in splits["test"]}
    for p in proteins:
        if p.id in test_ids:
            assert p.position >= 0.9 * p.genome_length
    labels = protparam(proteins[0].sequence)
    assert labels["stability"] == ("stable" if labels["instability_index"] < STABLE_BELOW else "unstable")


def write_csv(path, rows, header="sequence,label"):
    path.write_text(header + "\n" + "".join(f"{s},{y}\n" for s, y in rows))
    return str(path)


def test_csv_bad_records_are_skipped_with_one_warning(tmp_path):
    rows = [("MKTAYIAK", "1.5"), ("MKT1AY", "2.0"), ("", "1.0"), ("MKTAYW", "abc"), ("MKTAYV", "nan"),
            ("M" * 50, "3.0"), ('"MKVL"', "0.5")] + [(f"MK{'A' * k}L", str(k)) for k in range(40)]
    train = write_csv(tmp_path / "train.csv", rows)
    before = Path(train).read_bytes()
    dm = PropertyDataModule(train=train, max_length=45)
    with pytest.warns(DataWarning) as caught:
        splits = dm.splits()
    message = str(caught[0].message)
    assert "train.csv: skipped 5 of 47 records" in message
    for reason in ("not a protein: line 3", "empty sequence: line 4", "label not a number: line 5",
                   "label not a finite number: line 6", "longer than max_length 45: line 7"):
        assert reason in message
    kept = sum(len(v) for v in splits.values())
    assert kept == 42 and splits["valid"] and splits["test"] and Path(train).read_bytes() == before
    again = PropertyDataModule(train=train, max_length=45)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert [e.origin for e in again.splits()["test"]] == [e.origin for e in splits["test"]]  # a hash, not chance
    mean, std = dm.target_scale
    ys = [float(e.label) for e in splits["train"]]
    assert math.isclose(mean, np.mean(ys)) and math.isclose(std, np.std(ys))


def test_classification_csv_drops_unseen_classes_and_needs_two(tmp_path):
    train = write_csv(tmp_path / "train.csv", [(f"MK{'A' * k}", "ab" if k % 2 else "cd") for k in range(30)])
    test = write_csv(tmp_path / "test.csv", [("MKAAA", "ab"), ("MKLLL", "zz")])
    dm = PropertyDataModule(train=train, test=test, label_kind="classification")
    with pytest.warns(DataWarning, match="test.csv:3: skipped 1 test example"):
        splits = dm.splits()
    assert dm.classes == ["ab", "cd"] and dm.num_outputs == 2 and len(splits["test"]) == 1
    one = write_csv(tmp_path / "one.csv", [("MKA", "x"), ("MKL", "x")])
    with pytest.raises(DataError, match="one.csv: classification needs at least two classes"):
        PropertyDataModule(train=one, label_kind="classification").splits()
    bad = write_csv(tmp_path / "bad.csv", [("M1", "1")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match="bad.csv: no usable records"):
            PropertyDataModule(train=bad).splits()
    with pytest.raises(DataError, match="lacks column"):
        PropertyDataModule(train=write_csv(tmp_path / "h.csv", [("MK", "1")], header="seq,y")).splits()


def test_genomic_benchmarks_folder(tmp_path):
    for part, n in (("train", 12), ("test", 3)):
        for cls, base in (("promoter", "ACGT"), ("random", "TTGA")):
            folder = tmp_path / "bench" / part / cls
            folder.mkdir(parents=True)
            for k in range(n):
                (folder / f"{k}.txt").write_text(base * (k + 2) + "\n")
    (tmp_path / "bench" / "train" / "random" / "bad.txt").write_text("ACGTZZ")
    dm = PropertyDataModule(alphabet="dna", folder=str(tmp_path / "bench"))
    with pytest.warns(DataWarning, match=r"random: skipped 1 of 13 records \(not DNA"):
        splits = dm.splits()
    assert dm.kind == "classification" and dm.classes == ["promoter", "random"]
    assert len(splits["test"]) == 6 and len(splits["train"]) + len(splits["valid"]) == 24
    with pytest.raises(DataError, match="no train/ folder"):
        PropertyDataModule(alphabet="dna", folder=str(tmp_path)).splits()


def test_fasta_with_a_csv_of_labels(tmp_path):
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">s{k}\n{('ACGT' if k % 2 else 'TTGA') * (k + 2)}\n" for k in range(20))
                     + ">nolabel\nACGT\n>bad\nACGTZZ\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"s{k},{'promoter' if k % 2 else 'random'}\n" for k in range(20))
                      + "bad,random\ns3,random\n")
    before = fasta.read_bytes()
    dm = PropertyDataModule(alphabet="dna", label_kind="classification", train=str(fasta), labels=str(labels))
    with pytest.warns(DataWarning) as caught:
        splits = dm.splits()
    messages = " | ".join(str(w.message) for w in caught)
    assert "labels.csv: skipped 1 of 22 records (repeated id: line 23)" in messages
    assert "seqs.fa: skipped 2 of 22 records" in messages and "labels.csv): line 41" in messages
    assert "not DNA: line 43" in messages
    examples = sum(splits.values(), [])
    assert len(examples) == 20 and dm.classes == ["promoter", "random"]
    tok = dm.alphabet.tokenizer  # promoters are the ACGT repeats; s3's first label wins over its repeat
    assert all((tok.id_to_token(int(e.ids[0])) == "A") == (e.label == "promoter") for e in examples)
    assert fasta.read_bytes() == before
    with pytest.raises(UserError, match="labels come from a CSV of id,label"):
        PropertyDataModule(alphabet="dna", train=str(fasta))


def test_options_a_user_can_get_wrong(tmp_path):
    with pytest.raises(UserError, match="target must be one of"):
        PropertyDataModule(target="charge")
    with pytest.raises(UserError, match="alphabet must be one of"):
        PropertyDataModule(alphabet="rna", train="x.csv")
    with pytest.raises(UserError, match="need a train file"):
        PropertyDataModule(test="t.csv")
    with pytest.raises(UserError, match="split_percent"):
        PropertyDataModule(split_percent=(50, 10, 10))


@pytest.mark.parametrize("mixer", ["attention", "mamba", "hyena"])
def test_pooled_model_ignores_padding(mixer):
    torch.manual_seed(0)
    model = PropertyModel(PropertyConfig(vocab_size=30, num_outputs=3, encoder=BackboneConfig(
        d_model=32, n_layers=2, n_heads=2, dropout=0.0, max_len=64, mixer=mixer))).eval()
    ids = torch.randint(4, 25, (2, 40))
    ids[1, 23:] = 0
    with torch.no_grad():
        both = model(ids, ids != 0)
        alone = model(ids[1:, :23], ids[1:, :23] != 0)
    assert torch.allclose(both[1], alone[0], atol=1e-5)


def test_regression_head_predicts_in_label_units():
    task = PropertyTask(PropertyConfig(vocab_size=30, encoder=BackboneConfig(d_model=16, n_layers=1, n_heads=2,
                                                                             max_len=32, mixer="gla")),
                        target_scale=(7.0, 2.0)).eval()
    ids = torch.randint(4, 25, (3, 10))
    with torch.no_grad():
        raw = task.model(ids, ids != 0)[:, 0]
        assert torch.allclose(task.predict(ids, ids != 0), raw * 2.0 + 7.0)
        batch = {"ids": ids, "mask": ids != 0, "target": raw * 2.0 + 7.0}
        assert float(task.losses(batch)["loss"]) < 1e-10


def test_classifier_commands_end_to_end(tmp_path, capsys):
    """fit a tiny stability classifier, then: test metrics == predict's held-out metrics, a FASTA
    with bad entries keeps its rows, ONNX export passes its parity check."""
    root = tmp_path / "run"
    cli = train_main(["fit", "--config", "apps/genomics/configs/peptide_tiny.yaml", "--data.init_args.target", "stability",
                      "--trainer.default_root_dir", str(root)])
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    tested = train_main(["test", "--config", "apps/genomics/configs/peptide_tiny.yaml", "--data.init_args.target",
                         "stability", "--ckpt_path", ckpt, "--trainer.limit_test_batches", "1.0",
                         "--trainer.default_root_dir", str(root)])
    capsys.readouterr()
    assert predict_main(["--checkpoint", ckpt]) == 0
    printed = capsys.readouterr().out.split("): ")[1].strip()
    scores = dict(part.rsplit(" ", 1) for part in printed.split(", "))
    for name in ("accuracy", "f1", "mcc"):
        assert math.isclose(float(scores[name]), float(tested.trainer.callback_metrics[f"test/{name}"]), abs_tol=1e-4)

    fasta = tmp_path / "p.fa"
    fasta.write_text(">p1\nMKTAYIAKQRQISFVKSHFSRQ*\n>p2\nMKT1\n>p3\n" + "A" * 300 + "\n>p4\nmkvl\n")
    out, emb = tmp_path / "p.tsv", tmp_path / "p.npy"
    assert predict_main(["--checkpoint", ckpt, "--fasta", str(fasta), "--output", str(out),
                         "--embeddings", str(emb)]) == 1
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["line", "id", "length", "prediction", "p_stable", "p_unstable", "status"]
    assert [r[-1] for r in rows[1:]] == ["ok", "not a protein", "longer than max_length 256", "ok"]
    assert rows[1][2] == "22" and rows[1][3] in ("stable", "unstable")
    assert math.isclose(float(rows[1][4]) + float(rows[1][5]), 1.0, abs_tol=2e-4)
    assert np.isnan(np.load(emb)).any(1).tolist() == [False, True, True, False]

    assert export_main(["--checkpoint", ckpt, "--out", str(tmp_path / "onnx"), "--samples", "6"]) is None
    task, runner = PropertyTask.from_checkpoint(ckpt), OnnxProperty(tmp_path / "onnx")
    dm = PropertyDataModule(target="stability", max_length=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        examples = dm.splits()["valid"][:5]
    check = property_parity(task, runner, collate(examples, task.classes))
    assert check["ok"] and runner.config["classes"] == ["stable", "unstable"]


def test_regression_scatter_and_bad_options(fitted, tmp_path, capsys):
    ckpt = fitted("peptide_tiny.yaml")
    assert predict_main(["--checkpoint", ckpt, "--plot", str(tmp_path / "scatter.png")]) == 0
    assert "test split" in capsys.readouterr().out and (tmp_path / "scatter.png").stat().st_size > 10_000
    with pytest.raises(SystemExit) as exit_:
        predict_main(["--checkpoint", ckpt, "--fasta", str(tmp_path / "none.fa"), "--gff", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--gff needs a gene tagger" in err and len(err.strip().splitlines()) == 1


def test_a_checkpoint_whose_data_options_this_code_no_longer_takes(fitted, tmp_path, capsys):
    ckpt = torch.load(fitted("peptide_tiny.yaml"), weights_only=True)
    ckpt["datamodule_hyper_parameters"]["kind"] = "regression"  # an option an older version had
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    with pytest.raises(SystemExit) as exit_:
        predict_main(["--checkpoint", str(old)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "old.ckpt: its data options do not fit PropertyDataModule" in err
