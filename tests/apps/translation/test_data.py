"""Readers, record validation, token-budget batching and the translation data module."""

from __future__ import annotations

import json
import random
from collections import Counter

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import DistributedSampler

from apps.translation import corpora
from apps.translation.data import (
    DataWarning,
    TranslationDataModule,
    read_jsonl,
    read_moses,
    read_parallel,
    read_tsv,
    token_budget_batches,
)
from core.tokenizers import BOS_ID, EOS_ID, PAD_ID

PAIRS = [
    ("hello", "HH AH0 L OW1"),
    ("world", "W ER1 L D"),
    ("cat", "K AE1 T"),
    ("dog", "D AO1 G"),
    ("phone", "F OW1 N"),
    ("speech", "S P IY1 CH"),
    ("data", "D EY1 T AH0"),
    ("model", "M AA1 D AH0 L"),
    ("token", "T OW1 K AH0 N"),
    ("budget", "B AH1 JH IH0 T"),
    ("a", "AH0"),
    ("translation", "T R AE0 N S L EY1 SH AH0 N"),
]


def write_tsv(path, pairs=PAIRS):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def tsv_module(tmp_path, **kwargs) -> TranslationDataModule:
    train = write_tsv(tmp_path / "train.tsv")
    valid = write_tsv(tmp_path / "valid.tsv", PAIRS[:5])
    args = {"corpus": "files", "train_path": str(train), "valid_path": str(valid), "cache_dir": str(tmp_path / "cache")}
    return TranslationDataModule(**(args | kwargs))


# --------------------------------------------------------------------------- readers


def test_read_tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"\xef\xbb\xbfhola\thello\r\n\nbuenos d\xc3\xadas\t good morning \n")
    records, report = read_tsv(path)
    assert [(r.src, r.refs, r.line) for r in records] == [
        ("hola", ("hello",), 1),
        ("buenos días", ("good morning",), 3),
    ]
    assert records[0].origin == str(path) and report.total == 2 and report.n_skipped == 0


def test_read_moses(tmp_path):
    (tmp_path / "train.de").write_text("Hallo Welt\nDanke\n", encoding="utf-8")
    (tmp_path / "train.en").write_text("Hello world\nThanks\n", encoding="utf-8")
    records, report = read_moses(tmp_path / "train", "de", "en")
    assert [(r.src, r.tgt, r.line) for r in records] == [("Hallo Welt", "Hello world", 1), ("Danke", "Thanks", 2)]
    assert report.total == 2 and not report.skipped
    # "auto" recognises the prefix because PREFIX.de exists
    assert [r.src for r in read_parallel(str(tmp_path / "train"), "auto", "de", "en")[0]] == ["Hallo Welt", "Danke"]


def test_read_jsonl_with_multiple_references(tmp_path):
    path = tmp_path / "dev.jsonl"
    rows = [{"es": "hola", "en": "hello", "id": 7}, {"es": "leer", "en": ["read", "to read"], "id": 8}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    records, _ = read_jsonl(path, "es", "en", key_field="id")
    assert [(r.src, r.refs, r.key, r.line) for r in records] == [
        ("hola", ("hello",), "7", 1),
        ("leer", ("read", "to read"), "8", 2),
    ]


def test_bad_tsv_records_are_counted_and_warned_once_per_file(tmp_path):
    path = tmp_path / "train.tsv"
    lines = [
        b"hello\tHH AH0 L OW1",
        b"no tab here",  # 2: missing column
        b"world\tW ER1 L D",
        b"cat\t",  # 4: empty side
        b"d\xffg\tD AO1 G",  # 5: invalid UTF-8
        b"a\tb\tc",  # 6: extra column
        b"phone\tF OW1 N",
        b"\tK AE1 T",  # 8: empty side
        b"translation\tT R AE0 N S L EY1 SH AH0 N",  # 9: over-length with max_len=8
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    dm = TranslationDataModule(corpus="files", train_path=str(path), max_len=8, cache_dir=str(tmp_path / "cache"))
    with pytest.warns(DataWarning) as caught:
        dm.setup("fit")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{path}: skipped 6 of 9 records (")
    assert "missing column: line 2;" in message
    assert "empty side: lines 4, 8" in message
    assert "invalid UTF-8: line 5" in message
    assert "extra column: line 6" in message
    assert "over-length: line 9" in message
    assert sorted(e.src_text for e in dm._encode("train").examples) == ["hello", "phone", "world"]


def test_bad_jsonl_records(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"src": "hello", "tgt": "HH AH0 L OW1"}\n'
        "{not json\n"
        '{"src": "cat"}\n'
        '{"src": "dog", "tgt": 3}\n'
        '{"src": "", "tgt": "F OW1 N"}\n'
        '["src", "tgt"]\n',
        encoding="utf-8",
    )
    records, report = read_jsonl(path, "src", "tgt")
    assert [r.src for r in records] == ["hello"]
    assert report.skipped == {"invalid JSON": [2, 6], "missing key": [3], "not a string": [4], "empty side": [5]}


def test_many_offending_lines_are_abbreviated(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", PAIRS[:2] + [("x", "")] * 8)
    _, report = read_tsv(path)
    assert "empty side: lines 3, 4, 5, 6, 7 (+3 more)" in report.summary()


def test_misaligned_moses_files_name_both_files(tmp_path):
    (tmp_path / "train.src").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "train.tgt").write_text("A\nB\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"misaligned.*train\.src has 3 lines.*train\.tgt has 2"):
        read_moses(tmp_path / "train", "src", "tgt")


def test_moses_empty_and_bad_lines(tmp_path):
    (tmp_path / "c.src").write_bytes(b"a\n\nb\xfe\nd\n")
    (tmp_path / "c.tgt").write_bytes(b"A\nB\nB\n\n")
    records, report = read_moses(tmp_path / "c", "src", "tgt")
    assert [r.src for r in records] == ["a"]
    assert report.skipped == {"empty side": [2, 4], "invalid UTF-8": [3]}
    assert report.origin == f"{tmp_path / 'c'}.{{src,tgt}}"


def test_unusable_corpora_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_parallel(str(tmp_path / "missing.tsv"))
    (tmp_path / "empty.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"file is empty: .*empty\.tsv"):
        read_parallel(str(tmp_path / "empty.tsv"))
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_parallel(str(tmp_path / "data.csv"))

    junk = tmp_path / "junk.tsv"
    junk.write_text("only one column\nanother\n", encoding="utf-8")
    dm = TranslationDataModule(corpus="files", train_path=str(junk), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"junk\.tsv: no usable records \(skipped 2 of 2"):
        _ = dm.src_vocab_size

    # everything readable but too long for max_len: nothing usable remains after tokenization
    long = write_tsv(tmp_path / "long.tsv", [("abcdefgh", "A B C D E F G H")])
    dm = TranslationDataModule(corpus="files", train_path=str(long), max_len=4, cache_dir=str(tmp_path / "cache"))
    with pytest.warns(DataWarning, match="over-length"), pytest.raises(ValueError, match=r"long\.tsv: no usable"):
        dm.setup("fit")


# --------------------------------------------------------------------------- batching


def test_token_budget_batches_cover_everything_once_within_budget():
    rng = random.Random(0)
    src = [rng.randint(2, 60) for _ in range(500)]
    tgt = [rng.randint(3, 60) for _ in range(500)]
    for seed in (None, 1):
        batches = token_budget_batches(src, tgt, max_tokens=400, seed=seed)
        assert sorted(i for b in batches for i in b) == list(range(500))
        for b in batches:
            assert len(b) * max(src[i] for i in b) + len(b) * max(tgt[i] for i in b) <= 400
        assert len(batches) < 500 / 2  # buckets of similar length actually pack several records
    assert token_budget_batches(src, tgt, 400, seed=1) != token_budget_batches(src, tgt, 400, seed=2)
    with pytest.raises(ValueError, match="over max_tokens"):
        token_budget_batches([10], [10], max_tokens=15)


def test_batch_layout(tmp_path):
    dm = tsv_module(tmp_path, max_tokens=60, max_len=20)
    dm.setup("fit")
    src_tok, tgt_tok = dm.src_tokenizer_obj, dm.tgt_tokenizer_obj
    targets = dict(PAIRS)
    seen = []
    for batch in dm.val_dataloader():
        assert set(batch) == {"src_ids", "tgt_ids", "index", "src_text", "refs"}
        src, tgt = batch["src_ids"], batch["tgt_ids"]
        assert src.dtype == tgt.dtype == torch.long and src.shape[0] == tgt.shape[0] == len(batch["src_text"])
        assert src.numel() + tgt.numel() <= 60
        for row_src, row_tgt, text, refs, index in zip(src, tgt, batch["src_text"], batch["refs"], batch["index"]):
            ids = src_tok.encode(text)
            assert row_src.tolist() == ids + [EOS_ID] + [PAD_ID] * (src.shape[1] - len(ids) - 1)
            tgt_ids = tgt_tok.encode(targets[text])
            assert row_tgt.tolist() == [BOS_ID, *tgt_ids, EOS_ID] + [PAD_ID] * (tgt.shape[1] - len(tgt_ids) - 2)
            assert refs == [targets[text]]
            assert tgt_tok.decode(row_tgt.tolist()) == targets[text]
            seen.append(int(index))
    assert sorted(seen) == list(range(5))


def test_train_loader_covers_every_record_once_per_epoch(tmp_path):
    dm = tsv_module(tmp_path, max_tokens=50, max_len=20)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.batch_size is None and len(loader) > 1
    texts = [t for batch in loader for t in batch["src_text"]]
    assert sorted(texts) == sorted(s for s, _ in PAIRS)
    assert all(b["src_ids"].numel() + b["tgt_ids"].numel() <= 50 for b in loader)


def test_lightning_distributed_sampler_shards_whole_batches(tmp_path):
    """What Lightning does under DDP: re-create the loader with a DistributedSampler over our batches."""
    dm = tsv_module(tmp_path, max_tokens=45, max_len=20)
    dm.setup("fit")
    loader = dm.train_dataloader()
    n_batches = len(loader.dataset)
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sharded = _update_dataloader(loader, sampler)
        batches = list(sharded)
        assert len(batches) == (n_batches + 1) // 2
        assert all(b["src_ids"].numel() + b["tgt_ids"].numel() <= 45 for b in batches)
        per_rank.append([t for b in batches for t in b["src_text"]])
    every = per_rank[0] + per_rank[1]
    assert set(every) == {s for s, _ in PAIRS}  # both ranks together see every record
    if n_batches % 2 == 0:
        assert sorted(every) == sorted(s for s, _ in PAIRS)


class CountingModule(L.LightningModule):
    """Smallest real model: embeds source ids and predicts the first target token, counting what it sees."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(vocab, 8, padding_idx=PAD_ID)
        self.head = torch.nn.Linear(8, vocab)
        self.seen: list[str] = []

    def training_step(self, batch, batch_idx):
        self.seen.extend(batch["src_text"])
        logits = self.head(self.embed(batch["src_ids"]))
        return torch.nn.functional.cross_entropy(logits, batch["tgt_ids"][:, 1])

    def validation_step(self, batch, batch_idx):
        self.seen.append("validation batch")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_trainer_consumes_batches_without_a_validation_file(tmp_path):
    dm = TranslationDataModule(
        corpus="files",
        train_path=str(write_tsv(tmp_path / "train.tsv")),
        max_tokens=60,
        max_len=20,
        cache_dir=str(tmp_path / "cache"),
    )
    model = CountingModule(max(dm.src_vocab_size, dm.tgt_vocab_size))
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished and trainer.global_step == 2 * len(dm.train_dataloader())
    assert Counter(model.seen) == Counter({s: 2 for s, _ in PAIRS})  # every record once per epoch, no validation


def test_predict_keeps_blank_lines(tmp_path):
    inputs = tmp_path / "words.txt"
    inputs.write_text("hello\n\nworld\n", encoding="utf-8")
    dm = tsv_module(tmp_path, predict_path=str(inputs))
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert all(set(b) == {"src_ids", "src_text", "index"} for b in batches)
    rows = sorted((int(i), t, s.tolist()) for b in batches for i, t, s in zip(b["index"], b["src_text"], b["src_ids"]))
    assert [(i, t) for i, t, _ in rows] == [(0, "hello"), (1, ""), (2, "world")]
    assert rows[1][2][0] == EOS_ID  # a blank line is just EOS (then padding)


# --------------------------------------------------------------------------- tokenizers in the data module


def test_vocab_sizes_work_before_setup_and_are_cached(tmp_path, monkeypatch):
    dm = tsv_module(tmp_path)
    chars = {c for s, _ in PAIRS for c in s}
    phones = {p for _, t in PAIRS for p in t.split()}
    assert dm.src_vocab_size == 4 + len(chars)
    assert dm.tgt_vocab_size == 4 + len(phones)
    folder = dm.tokenizer_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["src.json", "tgt.json"]
    assert json.loads(dm.tokenizers_json()["tgt"])["type"] == "space"

    import apps.translation.data as data_module

    def no_training(*args, **kwargs):
        raise AssertionError("the cached tokenizers should have been loaded")

    monkeypatch.setattr(data_module, "load_or_train", no_training)
    again = TranslationDataModule(**dm.hparams)
    assert again.tokenizer_dir() == folder
    assert again.src_tokenizer_obj == dm.src_tokenizer_obj and again.tgt_vocab_size == dm.tgt_vocab_size
    # other settings, or an edited training file, make another cache entry
    assert TranslationDataModule(**(dm.hparams | {"vocab_size": 100})).tokenizer_dir() != folder
    write_tsv(tmp_path / "train.tsv", PAIRS[:-1])
    assert TranslationDataModule(**dm.hparams).tokenizer_dir() != folder


def test_shared_vocab_and_checkpoint_state(tmp_path):
    dm = tsv_module(tmp_path, src_tokenizer="bpe", tgt_tokenizer="bpe", shared_vocab=True, vocab_size=300)
    assert dm.src_tokenizer_obj == dm.tgt_tokenizer_obj
    assert dm.src_tokenizer_obj.decode(dm.src_tokenizer_obj.encode("HH AH0 hello")) == "HH AH0 hello"
    other = tsv_module(tmp_path, src_tokenizer="char", tgt_tokenizer="space")
    other.use_tokenizers_json(dm.tokenizers_json())  # what the task does when it loads a checkpoint
    assert other.src_tokenizer_obj == dm.src_tokenizer_obj and other.tgt_vocab_size == dm.tgt_vocab_size
    with pytest.raises(ValueError, match="shared_vocab"):
        TranslationDataModule(shared_vocab=True, src_tokenizer="char", tgt_tokenizer="space")


def test_constructor_validates_settings(tmp_path):
    with pytest.raises(ValueError, match="corpus"):
        TranslationDataModule(corpus="wmt")
    with pytest.raises(ValueError, match="max_tokens"):
        TranslationDataModule(max_tokens=100, max_len=64)
    with pytest.raises(ValueError, match="tokenizer kind"):
        TranslationDataModule(src_tokenizer="words")


# --------------------------------------------------------------------------- the bundled CMU dictionary


@pytest.fixture(scope="module")
def cmudict_splits():
    return {split: corpora.cmudict_records(split) for split in corpora.SPLITS}


def test_cmudict_split_is_deterministic_and_disjoint_by_word(cmudict_splits):
    words = {split: {w for w, _ in records} for split, records in cmudict_splits.items()}
    assert not (words["train"] & words["valid"] or words["train"] & words["test"] or words["valid"] & words["test"])
    n_words = sum(map(len, words.values()))
    assert n_words == len(corpora.cmudict_pronunciations()) > 120_000
    assert 0.88 < len(words["train"]) / n_words < 0.92
    assert 0.04 < len(words["valid"]) / n_words < 0.06 and 0.04 < len(words["test"]) / n_words < 0.06
    # the split hashes the word itself: fixed across runs, machines and Python hash seeds
    assert [corpora.split_of(w, corpora.CMUDICT_SPLIT) for w in ("read", "either", "hello")] == [
        "train",
        "train",
        "train",
    ]
    assert all(corpora.split_of(w, corpora.CMUDICT_SPLIT) == "valid" for w in list(words["valid"])[:100])


def test_cmudict_records_keep_every_pronunciation(cmudict_splits):
    prons = corpora.cmudict_pronunciations()
    assert prons["read"] == ("R EH1 D", "R IY1 D") and prons["either"] == ("IY1 DH ER0", "AY1 DH ER0")
    train = Counter(w for w, _ in cmudict_splits["train"])
    for word in ("read", "either"):  # both land in train: one record per pronunciation
        split = corpora.split_of(word, corpora.CMUDICT_SPLIT)
        if split == "train":
            assert train[word] == 2
            assert {refs for w, refs in cmudict_splits["train"] if w == word} == {(p,) for p in prons[word]}
        else:
            assert dict(cmudict_splits[split])[word] == prons[word]
    assert all(len(refs) == 1 for _, refs in cmudict_splits["train"])
    for split in ("valid", "test"):
        records = cmudict_splits[split]
        assert len(records) == len({w for w, _ in records})  # one record per word...
        assert all(refs == prons[w] for w, refs in records)  # ...holding all its pronunciations
        assert sum(len(refs) > 1 for _, refs in records) > 300
    assert all(w == w.lower() and all(c.isalpha() or c in "'.-" for c in w) for w in prons)
    assert any(p[-1].isdigit() for p in prons["hello"][0].split())  # stress digits kept


def test_cmudict_module_with_train_limit(tmp_path):
    dm = TranslationDataModule(train_limit=300, max_tokens=400, max_len=40, cache_dir=str(tmp_path))
    first_words = [w for w, _ in corpora.cmudict_records("train")[:300]]
    assert dm.src_vocab_size == 4 + len({c for w in first_words for c in w})  # before setup()
    dm.setup("fit")
    assert len(dm._encode("train").examples) == 300
    multi = [b for b in dm.iter_batches("valid") for refs in b["refs"] if len(refs) > 1]
    assert multi, "some validation words have several pronunciations"
    for batch in dm.iter_batches("valid"):
        assert batch["src_ids"].numel() + batch["tgt_ids"].numel() <= 400
