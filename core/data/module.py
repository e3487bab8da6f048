"""The datamodule shape most apps share: four loaders that differ only in the split they read."""
from __future__ import annotations

import lightning as L


class SplitDataModule(L.LightningDataModule):
    """Subclasses write ``_loader(split, shuffle)``; training reads ``train`` shuffled, validation
    ``valid`` and test ``test`` in order, and predict reads ``predict_split``."""

    predict_split = "test"

    def _loader(self, split: str, shuffle: bool):
        raise NotImplementedError

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("valid", False)

    def test_dataloader(self):
        return self._loader("test", False)

    def predict_dataloader(self):
        return self._loader(self.predict_split, False)
