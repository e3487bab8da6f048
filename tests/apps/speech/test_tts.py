"""TTS: losses and gradients of both acoustic models, teacher forcing equal to step-by-step decoding,
the guided-attention loss, the Griffin-Lim vocoder, phonemization and the synthesize command."""
import shutil

import pytest
import torch

from apps.speech.features import FeatureConfig, LogMel
from apps.speech.metrics import mel_cepstral_distortion
from apps.speech.tts.model import DecoderTTS, TransformerTTS, TTSConfig, guided_attention_loss
from apps.speech.tts.vocoder import GriffinLimVocoder
from core.models import BackboneConfig

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


def config(architecture="decoder", mixer="gla", dropout=0.5):
    backbone = BackboneConfig(d_model=32, n_layers=2, n_heads=2, dropout=0.0, mixer=mixer, position="none")
    encoder = BackboneConfig(d_model=32, n_layers=1, n_heads=2, dropout=0.0) if architecture == "transformer" else None
    return TTSConfig(vocab_size=20, backbone=backbone, encoder=encoder, n_mels=16, reduction=2, prenet_dim=16,
                     prenet_dropout=dropout, postnet_channels=8)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    phonemes = torch.randint(4, 20, (2, 7), generator=g)
    phonemes[1, 5:] = 0
    mel = torch.randn(2, 11, 16, generator=g)
    mel[1, 8:] = 0
    return phonemes, torch.tensor([7, 5]), mel, torch.tensor([11, 8])


@pytest.mark.parametrize("architecture,mixer", [("decoder", "gla"), ("decoder", "attention"), ("transformer", "attention")])
def test_losses_are_finite_and_reach_every_parameter(architecture, mixer):
    torch.manual_seed(0)
    model = (TransformerTTS if architecture == "transformer" else DecoderTTS)(config(architecture, mixer))
    losses, post = model(*batch())
    assert set(losses) == {"mel", "postnet", "stop"} | ({"guided"} if architecture == "transformer" else set())
    assert post.shape[0] == 2 and post.shape[2] == 16 and post.shape[1] >= 11
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("mixer", ["gla", "attention", "mamba"])
def test_decoder_only_teacher_forcing_equals_stepwise_decoding(mixer):
    """Row 1's text is shorter than row 0's: its audio must start right after its own text (packing),
    and each step's prediction must equal a prefill of the text followed by one step per frame."""
    torch.manual_seed(0)
    model = DecoderTTS(config(mixer=mixer, dropout=0.0)).eval()
    phonemes, p_lens, mel, m_lens = batch()
    with torch.no_grad():
        _, post = model(phonemes, p_lens, mel, m_lens)
        for row in range(2):
            n = int(p_lens[row])
            state = model.decoder.init_state(1, "cpu", torch.float32)
            _, state = model.decoder(model.embed(phonemes[row:row + 1, :n]) + model.segment.weight[0], state=state)
            steps = model.heads.inputs(mel[row:row + 1], 2)
            outs = []
            for k in range(steps.shape[1]):
                h, state = model.decoder(model.heads.prenet(steps[:, k:k + 1]) + model.segment.weight[1], state=state)
                outs.append(model.heads.outputs(h, 16)[0])
            stepwise = model.heads.postnet(torch.cat(outs, 1))
            frames = int(m_lens[row])
            # the post-net is a convolution: compare where its window saw only real frames of this row
            torch.testing.assert_close(stepwise[0, :frames - 2], post[row, :frames - 2], rtol=1e-4, atol=1e-4)


def test_guided_attention_prefers_the_diagonal():
    t, n = 12, 6
    diagonal = torch.zeros(1, 1, t, n)
    for i in range(t):
        diagonal[0, 0, i, min(n - 1, i * n // t)] = 1
    anti = diagonal.flip(-1)
    args = (torch.tensor([n]), torch.tensor([t]), 0.2)
    assert guided_attention_loss(diagonal, *args) < 0.1 < guided_attention_loss(anti, *args)


def test_griffin_lim_inverts_a_log_mel_spectrogram():
    cfg = FeatureConfig()
    t = torch.arange(16000) / 16000
    wave = 0.5 * torch.sin(2 * torch.pi * 440 * t) + 0.3 * torch.sin(2 * torch.pi * 1250 * t)
    logmel = LogMel(cfg)
    mel = logmel(wave[None])[0][0]
    audio = GriffinLimVocoder(cfg, n_iter=32)(mel)
    assert audio.abs().max() <= 1.0
    again = logmel(audio[None])[0][0]
    n = min(len(mel), len(again))
    noise = logmel((torch.randn(16000) * 0.3)[None])[0][0]
    assert mel_cepstral_distortion(again[:n], mel[:n]) < 0.5 * mel_cepstral_distortion(noise[:n], mel[:n])


@needs_espeak
def test_phonemize_marks_words_and_clauses():
    from apps.speech.phonemes import phonemize

    hello, plain = phonemize(["Hello, world.", "hello world"])
    assert hello.split(" , ") == [plain.split(" | ")[0], plain.split(" | ")[1]]
    assert "ˈoʊ" in hello.split()


@needs_espeak
def test_train_and_synthesize_command(tmp_path, capsys):
    from apps.speech.corpus import build_espeak_corpus
    from apps.speech.synthesize import main as synthesize
    from apps.speech.train import main as train

    corpus = tmp_path / "corpus"
    try:
        build_espeak_corpus(corpus, n_sentences=30, jobs=1)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    train(["fit", "--config", "apps/speech/configs/tts_tiny.yaml", "--data.corpus_dir", str(corpus),
           "--trainer.default_root_dir", str(tmp_path / "run")])
    ckpt = next((tmp_path / "run").rglob("*.ckpt"))
    ref = next((corpus / "wavs").glob("*.wav"))
    result = synthesize(["--checkpoint", str(ckpt), "In the beginning.", "-o", str(tmp_path / "out.wav"),
                         "--reference", str(ref), "--plot", str(tmp_path / "spec.png")])
    from apps.speech.audio import audio_info

    rate, frames, channels = audio_info(tmp_path / "out.wav")
    assert rate == 16000 and channels == 1 and frames > 0 and result["mcd"] > 0
    assert (tmp_path / "spec.png").stat().st_size > 1000
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # one line naming the file, nothing overwritten
        synthesize(["--checkpoint", str(ckpt), "Again.", "-o", str(tmp_path / "out.wav")])
    assert exit_.value.code == 2 and "out.wav exists" in capsys.readouterr().err


@pytest.mark.parametrize("architecture", ["decoder", "transformer"])
def test_synthesis_runs_free_until_the_stop_flag_or_the_step_limit(architecture):
    torch.manual_seed(0)
    model = (TransformerTTS if architecture == "transformer" else DecoderTTS)(config(architecture, "attention")).eval()
    phonemes = batch()[0][:1]
    mel = model.synthesize(phonemes, max_steps=6)
    assert mel.shape[1] == 16 and 2 <= mel.shape[0] <= 12 and mel.shape[0] % 2 == 0
    with torch.no_grad():
        model.heads.stop.bias.fill_(100.0)  # a stop flag that fires at once: a single step
    assert model.synthesize(phonemes, max_steps=6).shape[0] == 2
