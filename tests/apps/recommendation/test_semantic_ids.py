"""Semantic IDs: k-means and RQ-KMeans, the RQ-VAE's quantiser (straight-through gradients, loss
terms recomputed from their definitions, k-means initialisation, dead-code restarts, a short
training run), and the ID table (disambiguation, tokens, valid prefixes, metrics, file). Small
synthetic data and tiny codebooks throughout."""
import itertools
import math

import numpy as np
import pytest
import torch

from apps.recommendation.semantic_ids import (RQVAE, FILE_FORMAT, RQVAEConfig, RQVAETraining, SemanticIds,
                                              _cluster_means, kmeans, nearest, residual_kmeans, train_rqvae)
from core.errors import DataError, UserError


def blobs(n_blobs: int = 8, per_blob: int = 40, dim: int = 16, spread: float = 0.05, seed: int = 0) -> torch.Tensor:
    """``n_blobs`` tight clusters around random unit-scale centres, shuffled: [n_blobs * per_blob, dim]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_blobs, dim, generator=g)
    points = centres.repeat_interleave(per_blob, 0) + spread * torch.randn(n_blobs * per_blob, dim, generator=g)
    return points[torch.randperm(len(points), generator=g)]


# --------------------------------------------------------------------------- k-means


def test_kmeans_finds_well_separated_blobs():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    labels = torch.arange(4).repeat_interleave(25)
    x = centres[labels] + 0.1 * torch.randn(100, 2, generator=g)
    found, assign = kmeans(x, 4, generator=torch.Generator().manual_seed(0))
    # every blob is one cluster and every cluster one blob, whatever the numbering
    pairs = set(zip(labels.tolist(), assign.tolist()))
    assert len(pairs) == 4 and len({a for _, a in pairs}) == 4
    for blob, cluster in pairs:
        assert torch.allclose(found[cluster], x[labels == blob].mean(0), atol=1e-5)


def test_an_empty_cluster_moves_to_the_points_farthest_from_their_centre():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 3.0]])
    assign = torch.tensor([0, 0, 1, 1])
    _, distances = nearest(x, torch.tensor([[0.0, 0.5], [10.0, 1.5]]))  # 0.25, 0.25, 2.25, 2.25
    centres = _cluster_means(x, assign, distances, k=4)
    assert torch.allclose(centres[:2], torch.tensor([[0.0, 0.5], [10.0, 1.5]]))
    # clusters 2 and 3 were empty: each takes one of the two worst-served points, not the same one twice
    assert {tuple(c) for c in centres[2:].tolist()} == {(10.0, 0.0), (10.0, 3.0)}


def test_kmeans_needs_as_many_points_as_clusters():
    with pytest.raises(UserError, match="k-means into 8 clusters needs at least 8 points, got 5"):
        kmeans(torch.randn(5, 3), 8)


def test_residual_kmeans_error_falls_with_every_level():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    found = residual_kmeans(x, levels=4, codes=16, seed=0)
    assert found.codebooks.shape == (4, 16, 8) and found.codes.shape == (300, 4)
    errors = [float((x - found.reconstruct(levels)).pow(2).sum(1).mean()) for levels in range(5)]
    assert errors[0] == pytest.approx(float(x.pow(2).sum(1).mean()), rel=1e-6)  # no level: the zero vector
    assert all(later < earlier - 1e-3 for earlier, later in itertools.pairwise(errors)), errors
    # level l's code is the nearest codeword to what the levels before it left over
    residual = x - found.reconstruct(2)
    assert torch.equal(nearest(residual, found.codebooks[2])[0], found.codes[:, 2])


def test_residual_kmeans_is_deterministic_for_a_seed():
    x = blobs()
    a, b = residual_kmeans(x, 2, 8, seed=3), residual_kmeans(x, 2, 8, seed=3)
    assert torch.equal(a.codes, b.codes) and torch.allclose(a.codebooks, b.codebooks)


# --------------------------------------------------------------------------- the RQ-VAE

TINY = RQVAEConfig(input_dim=16, hidden_dims=(32,), latent_dim=8, levels=2, codes=8, dead_window=5, kmeans_iters=20)


def tiny_model(seed: int = 0, config: RQVAEConfig = TINY) -> RQVAE:
    torch.manual_seed(seed)
    return RQVAE(config)


def test_gradients_pass_straight_through_the_quantiser():
    """The reconstruction's gradient reaches the latent as if quantisation were the identity: it is
    the decoder's gradient at the quantised latent. No reconstruction gradient reaches the codebooks."""
    model = tiny_model()
    x = blobs()
    model.init_codebooks(x)
    z = model.encoder(x).detach().requires_grad_(True)
    q = model.quantizer(z)
    ((model.decoder(q.straight_through) - x) ** 2).sum().backward()
    at_codewords = q.quantized.detach().requires_grad_(True)
    ((model.decoder(at_codewords) - x) ** 2).sum().backward()
    assert z.grad.abs().sum() > 0 and torch.allclose(z.grad, at_codewords.grad, atol=1e-5)
    assert torch.allclose(q.straight_through, q.quantized, atol=1e-6)  # forward: the codewords

    model.zero_grad()
    model(x).losses["reconstruction"].backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert model.quantizer.codebooks.grad is None or model.quantizer.codebooks.grad.abs().sum() == 0


def test_loss_terms_are_recomputed_from_their_definitions():
    model = tiny_model()
    x = blobs()
    model.init_codebooks(x[:100])
    out = model(x)
    # by hand: level by level, the nearest codeword to the residual, then the residual minus it
    with torch.no_grad():
        z = model.encoder(x)
        residual, quantized, codebook = z.clone(), torch.zeros_like(z), 0.0
        for book in model.quantizer.codebooks:
            chosen = book[((residual[:, None, :] - book[None]) ** 2).sum(-1).argmin(1)]
            codebook += ((residual - chosen) ** 2).sum(1).mean()
            quantized += chosen
            residual -= chosen
        reconstruction = ((model.decoder(quantized) - x) ** 2).sum(1).mean()
    losses = out.losses
    value = {name: float(term.detach()) for name, term in losses.items()}
    assert value["reconstruction"] == pytest.approx(float(reconstruction), rel=1e-5)
    assert value["codebook"] == pytest.approx(float(codebook), rel=1e-5)
    assert value["commitment"] == pytest.approx(float(codebook), rel=1e-5)  # same value, other gradient
    assert value["loss"] == pytest.approx(float(reconstruction + codebook + 0.25 * codebook), rel=1e-5)
    # the codebook term trains the codewords only, the commitment term the encoder only
    losses["codebook"].backward(retain_graph=True)
    assert model.quantizer.codebooks.grad.abs().sum() > 0 and model.encoder[0].weight.grad is None
    model.zero_grad(set_to_none=True)
    losses["commitment"].backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0 and model.quantizer.codebooks.grad is None


def test_codebooks_start_as_kmeans_of_the_first_batchs_residuals():
    model = tiny_model()
    x = blobs()
    assert model.needs_init
    model.init_codebooks(x)
    assert not model.needs_init
    with torch.no_grad():
        expected = residual_kmeans(model.encoder(x), TINY.levels, TINY.codes, TINY.kmeans_iters, seed=0)
    assert torch.allclose(model.quantizer.codebooks, expected.codebooks, atol=1e-6)
    assert torch.equal(model.semantic_codes(x), expected.codes)


def test_dead_codes_are_restarted_from_the_batch():
    model = tiny_model()
    x = blobs()
    model.init_codebooks(x)
    with torch.no_grad():
        model.quantizer.codebooks[0, [2, 5]] = 1e3  # far from every latent: never chosen again
    model.train()
    for step in range(TINY.dead_window):
        assert not model.quantizer.dead_codes()[0, 2]  # not dead before the window has passed
        model(x)
    dead = model.quantizer.dead_codes()
    assert dead[0, 2] and dead[0, 5] and not dead[1].all()
    assert model.restart_dead_codes(x) == int(dead.sum())
    assert not model.quantizer.dead_codes().any()
    books = model.quantizer.codebooks
    assert books[0, [2, 5]].abs().max() < 100  # moved among the latents ...
    codes = model(x).codes
    assert {2, 5} <= set(codes[:, 0].tolist())  # ... where items choose them again
    assert model.restart_dead_codes(x) == 0  # and nothing is restarted while every code is in use


@pytest.fixture(scope="module")
def trained() -> tuple[RQVAE, list[dict[str, float]], torch.Tensor]:
    x = blobs(n_blobs=16, per_blob=32, spread=0.4)
    config = RQVAEConfig(input_dim=16, hidden_dims=(64, 32), latent_dim=8, levels=2, codes=16, dead_window=20)
    model, log = train_rqvae(x, config, RQVAETraining(steps=300, batch_size=128, lr=3e-3, seed=0))
    return model, log.losses, x


def test_training_reduces_the_reconstruction_error(trained):
    _, losses, _ = trained
    first = np.mean([step["reconstruction"] for step in losses[:10]])
    last = np.mean([step["reconstruction"] for step in losses[-10:]])
    assert last < 0.3 * first, (first, last)
    assert all(set(step) == {"loss", "reconstruction", "codebook", "commitment"} for step in losses)


def test_trained_codebooks_are_well_used(trained):
    model, _, x = trained
    ids = SemanticIds.from_codes(model.semantic_codes(x), 16)
    # measured: usage 1.0 at both levels (without dead-code restarts 0.81); level 0 perplexity 16.0
    # on an AMD EPYC, 13.3 on an Intel Xeon with AMX (the training path differs with the CPU's kernels)
    assert min(ids.usage()) >= 0.9, ids.usage()
    assert ids.perplexity()[0] > 12, ids.perplexity()  # of 16: the items spread over most codes


def test_training_needs_as_many_items_as_codes():
    with pytest.raises(UserError, match="needs at least 8 items"):
        train_rqvae(torch.randn(5, 16), TINY, RQVAETraining(steps=1))


# --------------------------------------------------------------------------- the ID table


def test_collisions_get_distinct_disambiguation_tokens_in_item_order():
    codes = torch.tensor([[1, 2], [0, 0], [1, 2], [3, 3], [1, 2], [0, 0]])
    ids = SemanticIds.from_codes(codes, 4)
    assert ids.ids[:, -1].tolist() == [0, 0, 1, 0, 2, 1]
    assert torch.equal(ids.ids[:, :-1], codes)
    assert len(torch.unique(ids.ids, dim=0)) == len(codes)
    assert ids.disambiguation_size == 3 and ids.collision_rate == pytest.approx(3 / 6)
    assert torch.equal(SemanticIds.from_codes(codes.clone(), 4).ids, ids.ids)  # the same every time


def test_every_item_gets_a_unique_id_even_with_many_collisions():
    found = residual_kmeans(blobs(), levels=2, codes=4, seed=0)  # 16 tuples for 320 items
    ids = SemanticIds.from_codes(found.codes, 4)
    assert len(torch.unique(ids.ids, dim=0)) == ids.n_items == 320
    assert ids.collision_rate > 0.9
    distinct = len(torch.unique(found.codes, dim=0))
    assert ids.collision_rate == pytest.approx(1 - distinct / 320)


def test_metrics_by_hand():
    codes = torch.tensor([[0, 1], [0, 1], [1, 1], [2, 3]])
    ids = SemanticIds.from_codes(codes, 4)
    assert ids.usage() == pytest.approx([3 / 4, 2 / 4])
    # level 0 spreads the items 2, 1, 1; level 1 3, 1
    level0 = math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    level1 = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert ids.perplexity() == pytest.approx([level0, level1])
    assert ids.collision_rate == pytest.approx(1 / 4)


def test_tokens_round_trip_and_positions_never_share_a_token():
    codes = torch.tensor([[1, 2], [0, 0], [1, 2], [3, 3]])
    ids = SemanticIds.from_codes(codes, 4)
    assert ids.sizes == (4, 4, 2) and ids.offsets == (0, 4, 8) and ids.vocab_size == 10
    tokens = ids.to_tokens(offset=3)
    assert tokens.tolist() == [[4, 9, 11], [3, 7, 11], [4, 9, 12], [6, 10, 11]]
    assert torch.equal(ids.from_tokens(tokens, offset=3), ids.ids)
    assert ids.item_of(offset=3)[(4, 9, 12)] == 2
    with pytest.raises(UserError, match=r"token 11 is not a valid token for ID position 1 \(expected 7..10\)"):
        ids.from_tokens(torch.tensor([[4, 11, 11]]), offset=3)


def test_valid_next_tokens_form_the_trie_of_all_ids():
    ids = SemanticIds.from_codes(torch.tensor([[1, 2], [0, 0], [1, 2], [1, 3]]), 4)
    assert ids.valid_next() == {(): (0, 1), (0,): (4,), (1,): (6, 7), (0, 4): (8,), (1, 6): (8, 9), (1, 7): (8,)}
    # walking the table from () reaches exactly the items' IDs, and nothing else
    table, walked = ids.valid_next(), [()]
    for _ in range(ids.levels + 1):
        walked = [prefix + (token,) for prefix in walked for token in table[prefix]]
    assert sorted(walked) == sorted(tuple(row) for row in ids.to_tokens().tolist())


def test_a_table_with_two_equal_ids_is_refused():
    with pytest.raises(UserError, match="two items have the same semantic ID"):
        SemanticIds(torch.tensor([[1, 2, 0], [1, 2, 0]]), 4)
    with pytest.raises(UserError, match="codes must lie in 0..3"):
        SemanticIds(torch.tensor([[1, 4, 0]]), 4)


def test_save_and_load_a_plain_tensor_file(tmp_path):
    ids = SemanticIds.from_codes(torch.tensor([[1, 2], [0, 0], [1, 2]]), 4)
    path = tmp_path / "ids.pt"
    ids.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FILE_FORMAT and torch.equal(raw["ids"], ids.ids)
    loaded = SemanticIds.load(path)
    assert torch.equal(loaded.ids, ids.ids) and loaded.codes_per_level == 4
    assert [p.name for p in tmp_path.iterdir()] == ["ids.pt"]  # no temp file left beside it


def test_a_file_that_is_no_id_table_is_one_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path / 'none.pt'}: no such semantic ID file"):
        SemanticIds.load(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(DataError, match=f"^{junk}: not a semantic ID file"):
        SemanticIds.load(junk)
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(2)}, other)
    with pytest.raises(DataError, match=f"^{other}: not a semantic ID file \\(no 'seqlab.semantic_ids' format tag\\)"):
        SemanticIds.load(other)
    broken = tmp_path / "broken.pt"
    torch.save({"format": FILE_FORMAT, "version": 1, "ids": torch.tensor([[0, 0], [0, 0]]), "codes_per_level": 2},
               broken)
    with pytest.raises(DataError, match=f"^{broken}: invalid semantic ID table \\(two items have the same"):
        SemanticIds.load(broken)
