"""Speech recognition over any core backbone: CTC and Transformer-Transducer heads.

    audio [B, S] -> log-mel -> global CMVN -> SpecAugment (training only) -> conv subsampling (4x)
                 -> encoder (core Encoder; or a causal stack when ``streaming``) -> h [B, T, D]

* **CTC** (Graves et al. 2006): a linear layer over h, blank = id 0 (the tokenizers' padding id,
  which never occurs in a transcript), ``F.ctc_loss``.
* **Transducer** (RNN-T, Graves 2012; Transformer-Transducer, Zhang et al. 2020): a prediction
  network, a causal core ``Decoder`` over the labels emitted so far (it starts from BOS), and a
  joint network ``W_o tanh(W_e h_t + W_p g_u)`` giving logits for every (frame t, label prefix u);
  :func:`apps.speech.asr.rnnt.rnnt_loss` sums over all alignments (a vectorised wavefront, several
  times faster on CPU than ``torchaudio.functional.rnnt_loss``, which the tests compare it with).
  With ``prune_range: S`` the joint runs on S label positions per frame only (pruned RNN-T, Kuang
  et al. 2022: :func:`apps.speech.asr.rnnt.pruned_rnnt_loss`), the [B, T, U+1, joint] tensor that
  dominates a transducer's training step shrinks to [B, T, S, joint].
* **joint**: both heads on one encoder, loss ``(1 - ctc_weight) * transducer + ctc_weight * ctc``
  (the CTC branch regularises the encoder and speeds up early training).

Any mixer is a config line (``encoder.mixer: mamba``). With ``streaming: true`` the encoder is a
causal stack, so every output frame depends only on audio up to it (plus the subsampling's 30 ms
look-ahead), and recurrent mixers decode with constant memory however long the audio.

Decoding: greedy and beam search for both heads (:mod:`apps.speech.asr.decoding`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from apps.speech.asr.rnnt import pruned_rnnt_loss, rnnt_loss
from apps.speech.features import ConvSubsampling, FeatureConfig, GlobalCMVN, LogMel, SpecAugment
from core.models import BackboneConfig, Decoder, Encoder
from core.models.state import DecoderState
from core.nn import TokenEmbedding, padding_mask
from core.tokenizers import BOS_ID, PAD_ID

BLANK = PAD_ID
LOSSES = ("ctc", "transducer", "joint")


def default_predictor() -> BackboneConfig:
    """A one-layer prediction network: it only has to model the label history."""
    return BackboneConfig(d_model=256, n_layers=1)


@dataclass
class ASRConfig:
    #: output labels (linked from the datamodule by the CLI)
    vocab_size: int = 0
    encoder: BackboneConfig = field(default_factory=BackboneConfig)
    #: prediction network of the transducer (a small causal stack over labels)
    predictor: BackboneConfig = field(default_factory=default_predictor)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    #: ctc | transducer | joint (both heads, weighted by ctc_weight)
    loss: str = "transducer"
    ctc_weight: float = 0.3
    joint_dim: int = 256
    #: causal encoder: streaming transcription, same result as offline decoding
    streaming: bool = False
    subsampling_channels: int = 256
    specaugment: bool = True
    #: pruned RNN-T: the full joint only on this many label positions per frame (0: the whole lattice)
    prune_range: int = 0
    #: weight of the pruned RNN-T's simple (trivial-joiner) loss, which picks the windows
    simple_weight: float = 0.5

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}; expected one of {LOSSES}")


class ASRModel(nn.Module):
    def __init__(self, cfg: ASRConfig):
        super().__init__()
        self.cfg = cfg
        d, n_mels = cfg.encoder.d_model, cfg.features.n_mels
        self.logmel = LogMel(cfg.features)
        self.cmvn = GlobalCMVN(n_mels)
        self.specaugment = SpecAugment() if cfg.specaugment else None
        self.subsampling = ConvSubsampling(n_mels, d, cfg.subsampling_channels)
        self.encoder = Decoder(cfg.encoder) if cfg.streaming else Encoder(cfg.encoder)
        self.ctc_head = nn.Linear(d, cfg.vocab_size) if cfg.loss in ("ctc", "joint") else None
        if cfg.loss in ("transducer", "joint"):
            dp = cfg.predictor.d_model
            self.embed = TokenEmbedding(cfg.vocab_size, dp)
            self.predictor = Decoder(cfg.predictor)
            self.joint_enc = nn.Linear(d, cfg.joint_dim)
            self.joint_pred = nn.Linear(dp, cfg.joint_dim)
            self.joint_out = nn.Linear(cfg.joint_dim, cfg.vocab_size)
            if cfg.prune_range > 0:  # the simple joiner: encoder and predictor logits, added
                self.simple_enc = nn.Linear(d, cfg.vocab_size)
                self.simple_pred = nn.Linear(dp, cfg.vocab_size)
        else:
            self.predictor = None
        #: longest transcript the prediction network can take (its position table holds BOS too)
        self.max_labels = cfg.predictor.max_len - 1

    # ------------------------------------------------------------------ encoder side

    def features(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel frames [B, F, n_mels] and their counts."""
        feats, lens = self.logmel(audio, audio_lens)
        return self.cmvn(feats, lens), lens

    def encode(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio [B, S] (float, padded with anything) and sample counts [B] -> (h [B, T, D], frame counts [B])."""
        feats, lens = self.features(audio, audio_lens)
        if self.training and self.specaugment is not None:
            feats = self.specaugment(feats, lens)
        x, lens = self.subsampling(feats, lens)
        return self.encode_frames(x, lens), lens

    def encode_frames(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(lens, x.shape[1])
        if self.cfg.streaming:
            return self.encoder(x, real=mask)[0]  # causal: right padding cannot reach real frames
        return self.encoder(x, mask=mask)

    # ------------------------------------------------------------------ transducer side

    def predict(self, labels: torch.Tensor, state: DecoderState | None = None):
        """Prediction network over ``labels`` [B, U] -> (g [B, U, Dp], state). Training passes
        ``[BOS] + transcript``; decoding feeds one label at a time with a state."""
        return self.predictor(self.embed(labels), state=state)

    def joint(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """h [..., J] (projected encoder frames), g [..., J] (projected predictions), broadcast -> logits [..., V]."""
        return self.joint_out(torch.tanh(h + g))

    def start(self, batch: int) -> tuple[torch.Tensor, DecoderState]:
        """Prediction after BOS alone (the state every hypothesis starts from), projected: ([B, J], state)."""
        p = self.joint_pred.weight
        state = self.predictor.init_state(batch, p.device, p.dtype)
        g, state = self.predict(torch.full((batch, 1), BOS_ID, device=p.device), state)
        return self.joint_pred(g[:, 0]), state

    def step(self, labels: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Feed one label per row [B] -> (projected prediction [B, J], new state)."""
        g, state = self.predict(labels[:, None], state)
        return self.joint_pred(g[:, 0]), state

    # ------------------------------------------------------------------ training

    def forward(self, audio, audio_lens, targets, target_lens) -> dict[str, torch.Tensor]:
        """Losses for a batch: targets [B, U] label ids padded with 0, target_lens [B].
        Returns {"loss", and "ctc" / "transducer" when computed}, each a mean over utterances."""
        h, lens = self.encode(audio, audio_lens)
        out: dict[str, torch.Tensor] = {}
        if self.ctc_head is not None:
            log_probs = self.ctc_head(h).float().log_softmax(-1).transpose(0, 1)  # [T, B, V]
            out["ctc"] = F.ctc_loss(log_probs, targets, lens, target_lens, blank=BLANK,
                                    reduction="sum", zero_infinity=True) / targets.shape[0]
        if self.predictor is not None:
            bos = torch.full_like(targets[:, :1], BOS_ID)
            g, _ = self.predict(torch.cat([bos, targets], 1))  # [B, U + 1, Dp]
            if self.cfg.prune_range > 0 and torch.is_grad_enabled():  # training; evaluation reports the exact loss
                pruned, simple = pruned_rnnt_loss(
                    self.joint_enc(h), self.joint_pred(g), self.joint, self.simple_enc(h), self.simple_pred(g),
                    targets, lens, target_lens, self.cfg.prune_range, blank=BLANK)
                out["simple"] = simple.mean()
                out["transducer"] = pruned.mean() + self.cfg.simple_weight * out["simple"]
            else:
                logits = self.joint(self.joint_enc(h)[:, :, None], self.joint_pred(g)[:, None])  # [B, T, U + 1, V]
                out["transducer"] = rnnt_loss(logits, targets, lens, target_lens, blank=BLANK)
        if "ctc" in out and "transducer" in out:
            w = self.cfg.ctc_weight
            out["loss"] = (1 - w) * out["transducer"] + w * out["ctc"]
        else:
            out["loss"] = out.get("transducer", out.get("ctc"))
        return out
