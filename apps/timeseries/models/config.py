"""The forecaster's config, written once: which model, its sizes, and what it predicts."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.models import BackboneConfig

MODELS = ("patch", "dlinear", "informer")
DECODINGS = ("direct", "autoregressive")


@dataclass
class ForecastConfig:
    #: linked from the data module
    lookback: int = 96
    horizon: int = 96
    #: known steps the Informer decoder starts from
    label_len: int = 48
    channels_in: int = 1
    time_features: int = 4
    #: ``patch`` (any core backbone over patches), ``dlinear`` or ``informer``
    model: str = "patch"
    #: what each future value is: ``point`` (MSE), ``quantile`` (pinball), ``student_t`` (NLL)
    head: str = "point"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    # -- patch models
    patch: int = 16
    stride: int = 8
    revin: bool = True
    decoding: str = "direct"
    head_dropout: float = 0.0
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(
        d_model=128, n_layers=3, n_heads=8, max_len=512, dropout=0.2, mlp="gelu", norm="layernorm"))
    # -- DLinear
    kernel: int = 25
    individual: bool = False
    # -- Informer (width, heads, encoder depth and dropout from ``backbone``)
    factor: int = 5
    distil: bool = True
    decoder_layers: int = 1

    def __post_init__(self):
        if isinstance(self.backbone, dict):
            self.backbone = BackboneConfig(**self.backbone)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {self.decoding!r}")
        if self.model == "informer" and not 0 < self.label_len <= self.lookback:
            raise ValueError(f"label_len {self.label_len} must be in 1..lookback ({self.lookback})")
        if self.model == "patch" and self.patch > self.lookback:
            raise ValueError(f"patch {self.patch} is longer than the lookback {self.lookback}")
