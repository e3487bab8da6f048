"""The non-autoregressive TTS model: its alignment search against a per-utterance reference, the
forward-sum loss against a brute-force sum over paths, the length regulator, the pitch tracker,
losses and gradients, padding invariance, and that alignment learning finds a planted alignment."""
import itertools
import math

import pytest
import torch

from apps.speech.features import FeatureConfig, frame_pitch
from apps.speech.tts.alignment import (
    beta_binomial_prior, forward_sum_loss, monotonic_alignment, phoneme_average, regulate, standardize,
)
from apps.speech.tts.fastspeech import FastSpeech
from apps.speech.tts.model import TTSConfig, VarianceConfig
from core.models import BackboneConfig


def reference_alignment(log_p: list[list[float]]) -> list[int]:
    """Textbook monotonic alignment search for one utterance (T x N lists) -> durations."""
    t_max, n_max = len(log_p), len(log_p[0])
    score = [[-math.inf] * n_max for _ in range(t_max)]
    score[0][0] = log_p[0][0]
    for t in range(1, t_max):
        for n in range(n_max):
            stay, advance = score[t - 1][n], score[t - 1][n - 1] if n else -math.inf
            score[t][n] = max(stay, advance) + log_p[t][n]
    durations, n = [0] * n_max, n_max - 1
    for t in range(t_max - 1, -1, -1):
        durations[n] += 1
        if t and n and score[t - 1][n - 1] > score[t - 1][n]:
            n -= 1
    return durations


def test_monotonic_alignment_equals_the_reference_per_utterance():
    g = torch.Generator().manual_seed(0)
    log_p = torch.randn(3, 12, 6, generator=g).log_softmax(-1)
    text_lens, frame_lens = torch.tensor([6, 4, 2]), torch.tensor([12, 9, 2])
    durations = monotonic_alignment(log_p, text_lens, frame_lens)
    for b in range(3):
        n, t = int(text_lens[b]), int(frame_lens[b])
        expected = reference_alignment(log_p[b, :t, :n].tolist())
        assert durations[b, :n].tolist() == expected
        assert durations[b, n:].sum() == 0 and durations[b].sum() == t and durations[b, :n].min() >= 1


def test_forward_sum_loss_equals_the_sum_over_every_monotonic_path():
    """No blank can win when its score is very low: the loss is then -log of the sum, over all
    ways of splitting T frames into N non-empty consecutive runs, of the product of probabilities."""
    g = torch.Generator().manual_seed(1)
    t, n = 6, 3
    log_p = torch.randn(1, t, n, generator=g).log_softmax(-1)
    loss = forward_sum_loss(log_p, torch.tensor([n]), torch.tensor([t]), blank_log_p=-1e4)
    total = []
    for cuts in itertools.combinations(range(1, t), n - 1):
        bounds = [0, *cuts, t]
        total.append(sum(float(log_p[0, f, k]) for k in range(n) for f in range(bounds[k], bounds[k + 1])))
    assert float(loss) == pytest.approx(-torch.tensor(total).logsumexp(0).item() / n, rel=1e-4)


def test_beta_binomial_prior_is_a_distribution_that_follows_the_diagonal():
    prior = beta_binomial_prior(torch.tensor([5, 3]), torch.tensor([20, 7]), 5, 20)
    assert torch.allclose(prior[0].exp().sum(-1), torch.ones(20), atol=1e-4)
    assert torch.allclose(prior[1, :7, :3].exp().sum(-1), torch.ones(7), atol=1e-4)
    assert prior[1, 7:].abs().sum() == 0 and prior[1, :, 3:].abs().sum() == 0
    peaks = prior[0].argmax(-1)
    assert peaks[0] == 0 and peaks[-1] == 4 and (peaks.diff() >= 0).all()


def test_length_regulator_repeats_each_phoneme_for_its_duration():
    x = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    durations = torch.tensor([[2, 0, 3], [1, 1, 0]])
    y, lens = regulate(x, durations)
    assert lens.tolist() == [5, 2] and y.shape == (2, 5, 2)
    for b in range(2):
        expected = torch.repeat_interleave(x[b], durations[b], dim=0)
        assert torch.equal(y[b, : lens[b]], expected)
        assert y[b, lens[b]:].abs().sum() == 0
    means = phoneme_average(torch.tensor([[1.0, 3.0, 5.0, 5.0, 8.0], [2.0, 4.0, 9.0, 9.0, 9.0]]), durations, lens)
    assert torch.allclose(means, torch.tensor([[2.0, 0.0, 6.0], [2.0, 4.0, 0.0]]))
    z = standardize(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[True, True, True, False]]))
    assert torch.allclose(z, torch.tensor([[-1.2247, 0.0, 1.2247, 0.0]]), atol=1e-4)


def test_pitch_tracker_finds_a_tone_and_leaves_noise_unvoiced():
    cfg, rate = FeatureConfig(), 16000
    time = torch.arange(rate) / rate
    tone = torch.sin(2 * math.pi * 150 * time)
    noise = torch.randn(rate, generator=torch.Generator().manual_seed(0))
    log_f0, voiced = frame_pitch(torch.stack([tone, noise]), torch.tensor([rate, rate // 2]), cfg)
    assert log_f0.shape == voiced.shape == (2, 1 + (rate - cfg.n_fft) // cfg.hop_length)
    assert voiced[0].all() and voiced[1].float().mean() < 0.1
    assert torch.allclose(log_f0[0].exp(), torch.full_like(log_f0[0], 150.0), rtol=0.03)
    assert not voiced[1, 1 + (rate // 2 - cfg.n_fft) // cfg.hop_length:].any()  # padding is never voiced


def config(mixer="attention"):
    backbone = BackboneConfig(d_model=32, n_layers=2, n_heads=2, dropout=0.0, mixer=mixer, position="none")
    encoder = BackboneConfig(d_model=32, n_layers=1, n_heads=2, dropout=0.0, mixer=mixer, position="none")
    variance = VarianceConfig(predictor_channels=16, predictor_dropout=0.0, aligner_channels=8, bin_warmup=0)
    return TTSConfig(vocab_size=20, backbone=backbone, encoder=encoder, n_mels=16, postnet_channels=8, variance=variance)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    phonemes = torch.randint(4, 20, (2, 7), generator=g)
    phonemes[1, 5:] = 0
    mel = torch.randn(2, 15, 16, generator=g)
    mel[1, 11:] = 0
    log_f0 = torch.rand(2, 15, generator=g) + 4.5
    voiced = torch.rand(2, 15, generator=g) > 0.3
    voiced[1, 11:] = False
    return phonemes, torch.tensor([7, 5]), mel, torch.tensor([15, 11]), log_f0 * voiced, voiced


@pytest.mark.parametrize("mixer", ["attention", "gla", "mamba"])
def test_losses_are_finite_and_reach_every_parameter(mixer):
    torch.manual_seed(0)
    model = FastSpeech(config(mixer))
    losses, post = model(*batch())
    assert set(losses) == {"mel", "postnet", "duration", "pitch", "energy", "align", "binarize"}
    assert post.shape == (2, 15, 16)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("mixer", ["attention", "mamba"])
def test_a_padded_row_gets_the_losses_and_synthesis_it_gets_alone(mixer):
    torch.manual_seed(0)
    model = FastSpeech(config(mixer)).eval()
    phonemes, p_lens, mel, m_lens, log_f0, voiced = batch()
    with torch.no_grad():
        _, post = model(phonemes, p_lens, mel, m_lens, log_f0, voiced)
        _, alone = model(phonemes[1:, :5], p_lens[1:], mel[1:, :11], m_lens[1:], log_f0[1:, :11], voiced[1:, :11])
        assert torch.allclose(post[1, :11], alone[0], atol=1e-5)
        mel_b, _, lens_b, dur_b = model.predict(phonemes, p_lens)
        mel_1, _, lens_1, dur_1 = model.predict(phonemes[1:, :5], p_lens[1:])
    assert torch.equal(dur_b[1, :5], dur_1[0]) and dur_b[1, 5:].sum() == 0 and (dur_1 >= 1).all()
    assert int(lens_b[1]) == int(lens_1[0]) == int(dur_1.sum())
    assert torch.allclose(mel_b[1, : lens_1[0]], mel_1[0], atol=1e-5)


def test_synthesis_always_ends_within_the_length_cap():
    torch.manual_seed(0)
    model = FastSpeech(config()).eval()
    with torch.no_grad():
        model.durations.out.bias.fill_(5.0)  # ~150 frames per phoneme
        synthesis = model.generate(torch.tensor([[5, 6, 7]]), max_steps=50)
    assert synthesis.mel.shape == (50 * model.cfg.reduction, 16) and synthesis.stop_logits.numel() == 0


def test_alignment_learning_finds_a_planted_alignment():
    """Each phoneme id has its own spectrum; an utterance holds each phoneme for a known number of
    frames. 300 steps of the forward-sum loss alone must recover most of those durations (the prior
    alone gets a quarter; 64 utterances, so that the aligner cannot memorise paths instead)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    cfg = config()
    model = FastSpeech(cfg)
    spectra = torch.randn(20, 16, generator=g) * 2
    phonemes = torch.randint(4, 20, (64, 6), generator=g)
    durations = torch.randint(1, 6, (64, 6), generator=g)
    mel = torch.nn.utils.rnn.pad_sequence(
        [torch.repeat_interleave(spectra[p], d, dim=0) for p, d in zip(phonemes, durations)], batch_first=True)
    mel = mel + 0.1 * torch.randn(mel.shape, generator=g)
    p_lens, m_lens = torch.full((64,), 6), durations.sum(1)
    params = [*model.embed.parameters(), *model.aligner.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    for _ in range(300):
        log_p = model.aligner(model.embed(phonemes), p_lens, mel, m_lens, cfg.variance.prior_scale)
        loss = forward_sum_loss(log_p, p_lens, m_lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        log_p = model.aligner(model.embed(phonemes), p_lens, mel, m_lens, cfg.variance.prior_scale)
        found = monotonic_alignment(log_p, p_lens, m_lens)
    assert (found == durations).float().mean() > 0.85
