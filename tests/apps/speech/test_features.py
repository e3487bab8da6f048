import pytest
import torch

from apps.speech.features import (ConvSubsampling, FeatureConfig, GlobalCMVN, LogMel, SpecAugment, accumulate_stats,
                                  min_audio_samples, padding_mask)


def batch_of_waveforms(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    wave = torch.zeros(len(lengths), max(lengths))
    for b, n in enumerate(lengths):
        wave[b, :n] = 0.1 * torch.randn(n, generator=g)
    return wave, torch.tensor(lengths)


def mel_band_centers(n_mels: int, sample_rate: int) -> torch.Tensor:
    """Centre frequency (Hz) of each HTK mel band spanning 0..sr/2."""
    to_mel = lambda f: 2595 * torch.log10(1 + f / 700)  # noqa: E731
    mels = torch.linspace(0, to_mel(torch.tensor(sample_rate / 2.0)), n_mels + 2)[1:-1]
    return 700 * (10 ** (mels / 2595) - 1)


def test_log_mel_frame_counts_match_frames_and_unbatched_run():
    logmel = LogMel()
    wave, lengths = batch_of_waveforms([4000, 2345, 512, 300])
    feats, frame_lengths = logmel(wave, lengths)
    assert frame_lengths.tolist() == logmel.frames(lengths).tolist() == [1 + (4000 - 512) // 160,
                                                                         1 + (2345 - 512) // 160, 1, 0]
    assert feats.shape == (4, frame_lengths.max().item(), 80)
    for b in range(2):  # real frames equal a run on the utterance alone; padding is 0
        n = lengths[b].item()
        alone, alone_len = logmel(wave[b:b + 1, :n])
        assert alone.shape[1] == alone_len.item() == frame_lengths[b].item()
        torch.testing.assert_close(feats[b, :frame_lengths[b]], alone[0])
        assert (feats[b, frame_lengths[b]:] == 0).all()


def test_log_mel_uses_config_and_handles_all_short_batch():
    config = FeatureConfig(n_mels=40, n_fft=400, hop_ms=20.0)
    logmel = LogMel(config)
    feats, frame_lengths = logmel(*batch_of_waveforms([1000]))
    assert frame_lengths.tolist() == [1 + (1000 - 400) // 320] and feats.shape == (1, 2, 40)
    feats, frame_lengths = logmel(*batch_of_waveforms([100, 50]))
    assert feats.shape == (2, 0, 40) and frame_lengths.tolist() == [0, 0]
    # A tone at 1 kHz puts the most energy in the mel bin around 1 kHz.
    t = torch.arange(16000) / 16000
    feats, _ = LogMel()(torch.sin(2 * torch.pi * 1000 * t)[None])
    centers = mel_band_centers(80, 16000)
    assert abs(centers[feats[0].mean(0).argmax()] - 1000) < 60


def test_log_mel_stays_float32_under_bf16_autocast():
    """bf16-mixed training must not quantize the features (the TTS targets): the front end opts out."""
    torch.manual_seed(0)
    wave = torch.randn(2, 8000) * 0.1
    ref, _ = LogMel()(wave)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = LogMel()(wave)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_cmvn_normalises_real_frames_and_ignores_padding():
    torch.manual_seed(0)
    lengths = torch.tensor([30, 17, 5])
    feats = 3.0 + 2.0 * torch.randn(3, 30, 8) * torch.arange(1, 9)
    valid = padding_mask(lengths, 30)
    feats[~valid] = 1e4  # garbage padding must not reach the statistics
    stats = accumulate_stats(feats[:2], lengths[:2])
    stats = accumulate_stats(feats[2:], lengths[2:], stats)  # accumulation over batches
    assert stats[2].item() == 52
    cmvn = GlobalCMVN.from_stats(*stats)
    out = cmvn(feats, lengths)
    real = out[valid]
    torch.testing.assert_close(real.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(real.var(0, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)
    assert (out[~valid] == 0).all()
    restored = GlobalCMVN(8)
    restored.load_state_dict(cmvn.state_dict())  # statistics travel with the checkpoint
    torch.testing.assert_close(restored(feats, lengths), out)


def test_spec_augment_masks_only_real_frames_in_training():
    lengths = torch.tensor([200, 120, 60])
    feats = torch.randn(3, 200, 80) + 5.0  # no natural zeros
    feats[~padding_mask(lengths, 200)] = 7.0
    aug = SpecAugment()
    aug.eval()
    assert aug(feats, lengths) is feats
    aug.train()
    out = aug(feats, lengths, generator=torch.Generator().manual_seed(1))
    changed = out != feats
    assert changed.any()
    assert (out[changed] == 0).all()
    assert not changed[~padding_mask(lengths, 200)].any()
    torch.testing.assert_close(out, aug(feats, lengths, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(out, aug(feats, lengths, generator=torch.Generator().manual_seed(2)))


def test_spec_augment_mask_widths_follow_limits():
    lengths = torch.tensor([100, 40])
    aug = SpecAugment(freq_masks=1, freq_width=5, time_masks=1, time_width_ratio=0.1).train()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = aug(torch.ones(2, 100, 80), lengths, generator=g)
        # A bin is fully masked over real frames only by a frequency mask; a frame only by a time mask.
        bins = (out[0] == 0).all(0).sum().item()
        frames = [(out[b, :lengths[b]] == 0).all(1).sum().item() for b in range(2)]
        assert bins <= 5 and frames[0] <= 10 and frames[1] <= 4


def test_spec_augment_adaptive_time_masks_scale_with_length():
    lengths = torch.tensor([400, 30])
    aug = SpecAugment(freq_masks=0, time_masks=10, time_width_ratio=0.05, adaptive_time_masks=0.02).train()
    out = aug(torch.ones(2, 400, 4), lengths, generator=torch.Generator().manual_seed(0))
    assert (out[0] == 0).any()  # 8 masks of up to 20 frames
    assert (out[1] == 1).all()  # floor(0.02 * 30) = 0 masks


def test_conv_subsampling_lengths_and_padding_invariance():
    torch.manual_seed(0)
    sub = ConvSubsampling(n_mels=16, d_model=12, channels=4)
    lengths = torch.tensor([41, 23, 7, 9])
    assert sub.output_length(lengths).tolist() == [9, 5, 1, 1]
    x = torch.randn(4, 41, 16)
    y, out_lengths = sub(x, lengths)
    assert y.shape == (4, 9, 12) and out_lengths.tolist() == [9, 5, 1, 1]
    x2 = x.clone()
    x2[~padding_mask(lengths, 41)] = 100.0 * torch.randn_like(x2[~padding_mask(lengths, 41)])
    y2, _ = sub(x2, lengths)
    torch.testing.assert_close(y2, y)  # real outputs untouched, padded outputs 0
    assert (y[~padding_mask(out_lengths, 9)] == 0).all()
    for b, n in enumerate(lengths.tolist()):  # and equal to a run on the utterance alone
        alone, _ = sub(x[b:b + 1, :n], lengths[b:b + 1])
        torch.testing.assert_close(alone[0], y[b, :out_lengths[b]])


@pytest.mark.parametrize("j", [0, 3])
def test_conv_subsampling_receptive_field(j):
    """Output j depends on input frames 4j .. 4j + 6 (block 4j .. 4j + 3 plus right_context) only."""
    torch.manual_seed(0)
    sub = ConvSubsampling(n_mels=8, d_model=6, channels=16)
    x, lengths = torch.randn(1, 40, 8), torch.tensor([40])
    y = sub(x, lengths)[0][0, j]

    def output_after_changing(frames: slice) -> torch.Tensor:
        changed = x.clone()
        changed[:, frames] += 3.0 * torch.randn_like(changed[:, frames])
        return sub(changed, lengths)[0][0, j]

    last_seen = 4 * j + 3 + ConvSubsampling.right_context
    torch.testing.assert_close(output_after_changing(slice(last_seen + 1, None)), y, atol=0, rtol=0)
    if j > 0:
        torch.testing.assert_close(output_after_changing(slice(0, 4 * j)), y, atol=0, rtol=0)
    assert not torch.allclose(output_after_changing(slice(last_seen, last_seen + 1)), y)
    assert not torch.allclose(output_after_changing(slice(4 * j, 4 * j + 1)), y)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(n_mels=40, n_fft=400, hop_ms=20.0)])
def test_min_audio_samples_is_the_front_ends_receptive_field(config):
    """At the minimum the front end gives one encoder frame; one sample less gives none (or a conv1d error)."""
    n = min_audio_samples(config)
    logmel, conv = LogMel(config), ConvSubsampling(config.n_mels, 8, channels=4)
    feats, frames = logmel(*batch_of_waveforms([n]))
    out, out_len = conv(feats, frames)
    assert out_len.tolist() == [1] and out.shape == (1, 1, 8)
    feats, frames = logmel(*batch_of_waveforms([n - 1]))
    assert ConvSubsampling.output_length(frames).tolist() == [0]
    with pytest.raises(RuntimeError):
        conv(feats, frames)
    assert min_audio_samples(FeatureConfig()) == 512 + 6 * 160  # 92 ms at 16 kHz
