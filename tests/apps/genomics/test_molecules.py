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
