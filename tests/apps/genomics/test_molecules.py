"""Molecules: the atom-level SMILES tokenizer, MOSES from the molsets wheel, RDKit properties, and the
Regression Transformer (digit tokens, constrained property decoding and infilling, bad files)."""
import gzip
import math
from pathlib import Path

import pytest
import torch

from apps.genomics.molecule.data import MoleculeDataModule, collate
from apps.genomics.molecule.numbers import FORMATS
from apps.genomics.molecule.task import RegressionTransformerTask
from apps.genomics.molecules import canonical, molecule_properties, moses_file, read_smiles
from apps.genomics.train import main as train_main
from core.data.reports import DataWarning, SkipReport
from core.errors import DataError, UserError
from core.tokenizers import SmilesTokenizer, tokenizer_from_json, train_tokenizer


def test_smiles_tokens_are_atoms_bonds_and_ring_closures():
    smiles = "CC(=O)[C@@H](Oc1ccc(Cl)cc1)n1ccnc1.Br%12"
    assert SmilesTokenizer.split(smiles) == ["C", "C", "(", "=", "O", ")", "[C@@H]", "(", "O", "c", "1", "c", "c",
                                             "c", "(", "Cl", ")", "c", "c", "1", ")", "n", "1", "c", "c", "n", "c",
                                             "1", ".", "Br", "%12"]
    tok = train_tokenizer("smiles", [smiles, "CCN"])
    again = tokenizer_from_json(tok.to_json())
    assert again.decode(again.encode(smiles)) == smiles and again.encode("CCN") == tok.encode("CCN")
    assert SmilesTokenizer.is_tokenizable(smiles) and not SmilesTokenizer.is_tokenizable("CC?Xx")  # (X, x: no atom)


def test_moses_comes_from_the_wheel_and_parses():
    report = SkipReport("moses")
    rows = read_smiles(moses_file("test"), report, limit=200)
    assert len(rows) == 200 and report.n_skipped == 0 and rows[0][0] == 2
    props = [molecule_properties(s) for _, s in rows]
    assert all(p is not None and 0 < p["qed"] < 1 for p in props)
    assert len({canonical(s) for _, s in rows}) == 200  # MOSES is deduplicated


def test_bad_smiles_are_skipped_and_counted(tmp_path):
    path = tmp_path / "m.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("SMILES\nCCO\n\nCC?Xx\nC1CC\n")
    report = SkipReport(str(path))
    rows = read_smiles(path, report)
    assert rows == [(2, "CCO"), (5, "C1CC")] and "empty SMILES: line 3" in report.summary()
    assert "not SMILES: line 4" in report.summary()
    assert molecule_properties("C1CC") is None and canonical("C1CC") is None  # an unclosed ring
    bad = tmp_path / "h.csv"
    bad.write_text("smi,qed\nCCO,0.4\n")
    with pytest.raises(DataError, match="h.csv: the first line must be the header SMILES"):
        read_smiles(bad, SkipReport(str(bad)))


# --------------------------------------------------------------------------- Regression Transformer

TINY = ["--data.init_args.train_limit", "300", "--data.init_args.valid_size", "50", "--data.init_args.test_limit", "50",
        "--data.init_args.batch_size", "2"]


@pytest.mark.parametrize("name,value,tokens,back", [
    ("qed", 0.8967, ["<qed>", "_0_0", "_8_-1", "_9_-2", "_7_-3"], 0.897),
    ("qed", 1.7, ["<qed>", "_1_0", "_0_-1", "_0_-2", "_0_-3"], 1.0),  # clipped into [0, 1]
    ("logp", -2.344, ["<logp>", "_-_", "_0_1", "_2_0", "_3_-1", "_4_-2"], -2.34),
    ("logp", 13.1, ["<logp>", "_+_", "_1_1", "_3_0", "_1_-1", "_0_-2"], 13.1),
])
def test_numbers_are_digit_tokens_with_their_places(name, value, tokens, back):
    fmt = FORMATS[name]
    assert fmt.tokens(value) == tokens
    assert math.isclose(fmt.value(tokens[1:]), back, abs_tol=1e-9)


@pytest.mark.parametrize("config", sorted(Path("apps/genomics/configs").glob("molecule*.yaml")), ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, tmp_path):
    cli = train_main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", *TINY,
                      "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1


@pytest.fixture(scope="module")
def rt():
    """An untrained tiny RT with its data (decoding constraints hold whatever the weights)."""
    torch.manual_seed(0)
    dm = MoleculeDataModule(targets=["qed", "logp"], train_limit=300, valid_size=50, test_limit=50)
    task = RegressionTransformerTask({"vocab_size": dm.vocab_size, "encoder": {"d_model": 32, "n_layers": 2, "n_heads": 2,
                                                                              "dropout": 0.0, "max_len": 128}},
                                     properties=dm.properties)
    task.set_tokenizers(dm.tokenizers_json())
    return task.eval(), dm


def test_predicted_numbers_are_well_formed(rt):
    task, dm = rt
    batch = collate(dm.splits()["valid"][:6], dm.prefix_length)
    values = task.predict_properties(batch)
    assert set(values) == {"qed", "logp"} and values["qed"].shape == (6,)
    assert ((values["qed"] >= 0) & (values["qed"] <= FORMATS["qed"].largest)).all()
    truth = task.read_prefix(batch["ids"])
    want = torch.tensor([round(m.values["qed"], 3) for m in dm.splits()["valid"][:6]])
    assert torch.allclose(truth["qed"], want, atol=1e-6)


def test_infill_rewrites_only_the_masked_smiles_under_the_grammar(rt):
    task, dm = rt
    batch = collate(dm.splits()["valid"][:4], dm.prefix_length)
    where = batch["is_smiles"] & (torch.rand(batch["ids"].shape, generator=torch.Generator().manual_seed(1)) < 0.5)
    primed = {"qed": torch.full((4,), 0.9), "logp": torch.full((4,), -1.5)}
    out = task.infill(batch, where, primed, generator=torch.Generator().manual_seed(0))
    assert (out[~where & batch["is_smiles"]] == batch["ids"][~where & batch["is_smiles"]]).all()
    assert torch.allclose(task.read_prefix(out)["logp"], torch.full((4,), -1.5))
    t = task.tables()
    assert t["smiles"][out[where]].all()
    depth = (out == t["open"]).long().cumsum(1) - (out == t["close"]).long().cumsum(1)
    assert (depth[where] >= 0).all()  # no ")" without its "("
    greedy = [task.infill(batch, where, primed, top_k=1, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    assert torch.equal(greedy[0], greedy[1])
    assert len(task.smiles_of(out, batch["mask"])) == 4


def test_molecule_files_with_bad_records(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("SMILES\n" + "".join(f"{'C' * (k % 7 + 1)}O\n" for k in range(30)) + "C1CC\nCC?Xx\n" + "C" * 80 + "\n")
    test = tmp_path / "test.csv"
    test.write_text("SMILES\nCCO\nCBr\n")
    dm = MoleculeDataModule(train=str(train), test=str(test), train_limit=1000, valid_size=5, max_length=60)
    with pytest.warns(DataWarning) as caught:
        splits = dm.splits()
    messages = " | ".join(str(w.message) for w in caught)
    assert "train.csv: skipped 2 of 33 records" in messages and "RDKit cannot parse: line 32" in messages
    assert "not SMILES: line 33" in messages and "longer than max_length" in messages
    assert "token not in the training vocabulary" in messages  # Br never occurs in training
    assert len(splits["train"]) == 26 and len(splits["valid"]) == 4 and len(splits["test"]) == 1  # (the long one: valid)
    with pytest.raises(UserError, match="give both train and test"):
        MoleculeDataModule(train=str(train))
    with pytest.raises(UserError, match="targets must be distinct names"):
        MoleculeDataModule(targets=["qed", "qed"])


def test_fit_then_test_reports_property_metrics(fitted, tmp_path):
    ckpt = fitted("molecule_rt_tiny.yaml")
    tested = train_main(["test", "--config", "apps/genomics/configs/molecule_rt_tiny.yaml", "--ckpt_path", ckpt,
                         "--trainer.default_root_dir", str(tmp_path)])
    m = tested.trainer.callback_metrics
    assert float(m["test/qed_rmse"]) >= 0 and -1 <= float(m["test/qed_spearman"]) <= 1
    assert float(m["test/property_loss"]) > 0 and float(m["test/molecule_loss"]) > 0
    task = RegressionTransformerTask.from_checkpoint(ckpt)
    assert task.properties == ["qed"] and task.tokenizers["molecule"].token_to_id("<mask>") is not None


def test_generation_metrics_judge_what_infilling_writes(rt):
    from apps.genomics.molecule.evaluate import generation_metrics

    task, dm = rt
    seeds = dm.splits()["valid"][:12]
    training = {canonical(m.smiles) for m in dm.splits()["train"]}
    scores = generation_metrics(task, seeds, dm.prefix_length, training, fraction=0.3, batch_size=5)
    assert set(scores) == {"validity", "uniqueness", "novelty", "changed", "qed_spearman", "logp_spearman"}
    assert all(0 <= scores[k] <= 1 for k in ("validity", "uniqueness", "novelty", "changed"))
    nothing = generation_metrics(task, seeds, dm.prefix_length, training, fraction=1e-9)  # no atom masked
    assert nothing["validity"] == 1.0 and nothing["changed"] == 0.0 and nothing["novelty"] == 1.0  # (valid seeds)


def test_beam_of_one_is_greedy_and_beams_are_scored_as_filled(rt):
    task, dm = rt
    batch = collate(dm.splits()["valid"][:3], dm.prefix_length)
    where = batch["is_smiles"] & (torch.rand(batch["ids"].shape, generator=torch.Generator().manual_seed(2)) < 0.3)
    primed = {"qed": torch.full((3,), 0.8), "logp": torch.full((3,), 2.0)}
    one, _ = task.infill_beam(batch, where, primed, beam=1)
    assert torch.equal(one[:, 0], task.infill(batch, where, primed, top_k=1))
    ids, scores = task.infill_beam(batch, where, primed, beam=4)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    t = task.tables()
    for r in range(3):
        for k in range(4):
            fill = ids[r, k]
            assert t["smiles"][fill[where[r]]].all() and torch.equal(fill[~where[r]], task._primed(batch, where, primed)[r][~where[r]])
            # rescore the fill left to right as the search read it: positions right of the column still masked
            current, total = task._primed(batch, where, primed)[r:r + 1], 0.0
            for col in where[r].nonzero()[:, 0].tolist():
                with torch.no_grad():
                    logp = task.model(current, batch["mask"][r:r + 1])[0, col].float().log_softmax(-1)
                    total += float(logp[fill[col]])
                current[0, col] = fill[col]
            assert math.isclose(total, float(scores[r, k]), rel_tol=1e-4, abs_tol=1e-4)
        assert len({tuple(ids[r, k].tolist()) for k in range(4)}) == 4  # distinct fills


def rt_files(tmp_path):
    smiles = tmp_path / "molecules.csv"
    smiles.write_text("SMILES,name\nCCO,ethanol\n\nC1CC,broken\nCC(=O)Oc1ccccc1C(=O)O,aspirin\nXx?,junk\n"
                      "[U]CC,uranium\nc1ccccc1,benzene\n")
    return smiles, smiles.read_bytes()


def test_rt_predict_keeps_a_row_per_record(fitted, tmp_path, capsys):
    from apps.genomics.predict import main as predict_main

    ckpt = fitted("molecule_rt_tiny.yaml")
    smiles, before = rt_files(tmp_path)
    out = tmp_path / "predicted.tsv"
    assert predict_main(["--checkpoint", ckpt, "--smiles", str(smiles), "--output", str(out)]) == 1
    assert smiles.read_bytes() == before
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["line", "smiles", "qed", "rdkit_qed", "status"]
    assert [r[0] for r in rows[1:]] == ["2", "4", "5", "6", "7", "8"]
    status = {r[1]: r[-1] for r in rows[1:]}
    assert status == {"CCO": "ok", "C1CC": "RDKit cannot parse", "CC(=O)Oc1ccccc1C(=O)O": "ok", "Xx?": "not SMILES",
                      "[U]CC": "token not in the training vocabulary", "c1ccccc1": "ok"}
    for r in rows[1:]:
        if r[-1] == "ok":
            assert 0 <= float(r[2]) <= 1 and math.isclose(float(r[3]), molecule_properties(r[1])["qed"], abs_tol=1e-3)
    assert "skipped 3 of 6 records" in capsys.readouterr().err
    plot = tmp_path / "scatter.png"
    assert predict_main(["--checkpoint", ckpt, "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 0 and "test split (100 molecules, qed): rmse" in capsys.readouterr().out


@pytest.mark.parametrize("decode", [["--samples", "2", "--top-k", "5"], ["--beam", "3", "--samples", "2"]])
def test_rt_generate_writes_primed_molecules(fitted, tmp_path, decode):
    from apps.genomics.generate import main as generate_main

    ckpt = fitted("molecule_rt_tiny.yaml")
    smiles, before = rt_files(tmp_path)
    out = tmp_path / "written.tsv"
    code = generate_main(["--checkpoint", ckpt, "--smiles", str(smiles), "--target", "qed=0.9", *decode,
                          "--output", str(out)])
    assert code == 1 and smiles.read_bytes() == before
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0][:5] == ["line", "seed", "sample", "primed_qed", "smiles"]
    lines = [r[0] for r in rows[1:]]
    assert lines == sorted(lines, key=int) and set(lines) == {"2", "4", "5", "6", "7", "8"}
    for r in rows[1:]:
        if r[-1] == "ok":
            assert r[3] == "0.900" and r[5] in {"yes", "no"} and SmilesTokenizer.is_tokenizable(r[4])
            assert (r[6] != "") == (r[5] == "yes")
    assert sum(r[0] == "5" for r in rows) == 2 and sum(r[0] == "4" for r in rows) == 1


def test_rt_commands_reject_bad_options(fitted, tmp_path, capsys):
    from apps.genomics.generate import main as generate_main
    from apps.genomics.predict import main as predict_main

    ckpt = fitted("molecule_rt_tiny.yaml")
    smiles, _ = rt_files(tmp_path)
    for argv, message in [
        (["--target", "qed"], "write NAME=VALUE"),
        (["--target", "logp=1"], "knows qed"),
        (["--beam", "2", "--samples", "3"], "--beam 0 or at least --samples"),
        (["--prompt", "ACGT"], "rewrites --smiles seeds"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            generate_main(["--checkpoint", ckpt, "--smiles", str(smiles), *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        predict_main(["--checkpoint", ckpt, "--fasta", str(smiles)])
    assert exit_.value.code == 2 and "reads --smiles files" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("SMILES\nXx?\n")
    with pytest.raises(SystemExit) as exit_:
        predict_main(["--checkpoint", ckpt, "--smiles", str(empty)])
    assert exit_.value.code == 2 and "empty.csv" in capsys.readouterr().err


def test_rt_held_out_generation_and_export(fitted, tmp_path, capsys):
    from apps.genomics.export import main as export_main
    from apps.genomics.generate import main as generate_main
    from apps.genomics.molecule.inference import mask_atoms
    from apps.genomics.molecule.onnx import OnnxMaskedLM, molecule_parity

    ckpt = fitted("molecule_rt_tiny.yaml")
    assert generate_main(["--checkpoint", ckpt, "--seeds", "12"]) == 0
    assert "12 held-out seeds" in capsys.readouterr().out
    out = tmp_path / "onnx"
    export_main(["--checkpoint", ckpt, "--out", str(out), "--samples", "5"])  # exits 1 on mismatch
    assert "greedy infilling identical" in capsys.readouterr().out
    task = RegressionTransformerTask.from_checkpoint(ckpt)
    dm = MoleculeDataModule(targets=["qed"], train_limit=600, valid_size=100, test_limit=100)
    dm.use_tokenizers_json(task.tokenizers_json)
    batch = collate(dm.splits()["valid"][10:17], dm.prefix_length)  # other molecules than the command checked
    check = molecule_parity(task, OnnxMaskedLM(out), batch, mask_atoms(batch, 0.5, torch.Generator().manual_seed(3)))
    assert check["ok"], check
