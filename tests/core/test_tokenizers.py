"""The tokenizer contract: fixed special ids, lossless round trips, JSON/file persistence, UNK."""

from __future__ import annotations

import json

import pytest

from core.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    CharTokenizer,
    SpaceTokenizer,
    Tokenizer,
    load_tokenizer,
    tokenizer_from_json,
    tokenizer_kinds,
    train_tokenizer,
)

SENTENCES = [
    "¿Dónde está la biblioteca? Está allí, señor.",
    'The naïve café-owner said: "hello, world!" (twice)',
    "Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito.",
    "For God so loved the world, that he gave his one and only Son.",
    "Ça coûte 12,50 € — l'été dernier; c'était «incroyable»!",
]
WORDS = ["hello", "world", "read", "either", "o'brien", "co-op"]
PHONEMES = ["HH AH0 L OW1", "W ER1 L D", "R EH1 D", "R IY1 D", "IY1 DH ER0", "AY1 DH ER0"]


def trained(kind: str) -> Tokenizer:
    texts = {"char": WORDS, "space": PHONEMES}.get(kind, SENTENCES * 5)
    return train_tokenizer(kind, texts, vocab_size=300)


def test_all_kinds_registered():
    assert tokenizer_kinds() == ["bpe", "char", "hf", "smiles", "space", "unigram"]


@pytest.mark.parametrize("kind", ["char", "space", "smiles", "bpe", "unigram"])
def test_specials_have_fixed_ids(kind):
    tok = trained(kind)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert [tok.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS) == ["<pad>", "<s>", "</s>", "<unk>"]
    assert tok.vocab_size > 4


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_subword_round_trip_on_real_sentences(kind):
    tok = trained(kind)
    for sentence in SENTENCES:
        ids = tok.encode(sentence)
        assert BOS_ID not in ids and EOS_ID not in ids and PAD_ID not in ids  # encode adds no specials
        assert tok.decode(ids) == sentence
        assert all(0 <= i < tok.vocab_size for i in ids)


def test_bpe_is_byte_level_so_unseen_text_survives():
    tok = trained("bpe")
    unseen = "Ωμέγα 東京 🙂 naïveté"
    assert UNK_ID not in tok.encode(unseen)
    assert tok.decode(tok.encode(unseen)) == unseen


def test_char_round_trip_and_symbols():
    tok = trained("char")
    assert tok.decode(tok.encode("o'brien")) == "o'brien"
    assert tok.tokens("co-op") == ["c", "o", "-", "o", "p"]
    assert len(tok.encode("hello")) == 5
    assert tok.decode(tok.encode("Hello")) == "ello"  # no lowercasing: "H" is unknown, and decode drops UNK


def test_space_round_trip_and_symbols():
    tok = trained("space")
    assert tok.tokens("HH AH0 L OW1") == ["HH", "AH0", "L", "OW1"]
    assert tok.decode(tok.encode("  R   EH1 D ")) == "R EH1 D"
    assert len(tok.encode("AY1 DH ER0")) == 3


@pytest.mark.parametrize("kind", ["char", "space", "unigram"])
def test_unknown_symbol_maps_to_unk(kind):
    tok = trained(kind)
    text = {"char": "h@llo", "space": "HH ZZ9 OW1", "unigram": "hello Ω"}[kind]
    ids = tok.encode(text)
    assert UNK_ID in ids
    assert "<unk>" in tok.tokens(text)


def test_special_spellings_in_text_are_not_control_ids():
    tok = train_tokenizer("space", ["A B", "<s> A"], vocab_size=50)
    assert tok.encode("<s> </s> <pad> A") == [UNK_ID, UNK_ID, UNK_ID, tok.token_to_id("A")]


def test_decode_filters_specials_and_does_not_stop_at_eos():
    tok = trained("space")
    r, eh, d = (tok.token_to_id(s) for s in ("R", "EH1", "D"))
    assert tok.decode([BOS_ID, r, EOS_ID, eh, PAD_ID, d, UNK_ID, PAD_ID]) == "R EH1 D"
    assert tok.decode([r, tok.vocab_size + 5]) == "R"  # ids outside the vocabulary are skipped too


def test_vocab_size_caps_symbols_most_frequent_first():
    tok = train_tokenizer("char", ["aaab", "ab", "c"], vocab_size=6)
    assert isinstance(tok, CharTokenizer)
    assert tok.vocab_size == 6 and tok.symbols == ["a", "b"]
    assert train_tokenizer("char", ["aaab", "ab", "c"], min_frequency=2).symbols == ["a", "b"]


@pytest.mark.parametrize("kind", ["char", "space", "bpe", "unigram"])
def test_json_and_file_round_trip(kind, tmp_path):
    tok = trained(kind)
    text = SENTENCES[0] if kind in ("bpe", "unigram") else ("hello" if kind == "char" else "HH AH0 L OW1")
    state = json.loads(tok.to_json())
    assert state["type"] == kind

    again = tokenizer_from_json(tok.to_json())
    assert type(again) is type(tok) and again == tok
    assert again.to_json() == tok.to_json()
    assert again.encode(text) == tok.encode(text)

    path = tmp_path / "sub" / f"{kind}.json"
    tok.save(path)
    loaded = load_tokenizer(path)
    assert loaded == tok and loaded.encode(text) == tok.encode(text)
    assert [p.name for p in path.parent.iterdir()] == [f"{kind}.json"]  # the temp file was renamed away


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        train_tokenizer("wordpiece", ["a"])
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer("char", ["a"], vocab_size=4)
    with pytest.raises(ValueError, match='"type"'):
        tokenizer_from_json("[1, 2]")
    with pytest.raises(ValueError, match="special"):
        SpaceTokenizer(["A", "<unk>"])
