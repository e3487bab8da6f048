"""One tiny fit per genomics config for the whole session (checkpoints for the CLI tests)."""
import pytest

from apps.genomics.train import main


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    done = {}

    def checkpoint(config: str):
        if config not in done:
            root = tmp_path_factory.mktemp(config.split(".")[0])
            cli = main(["fit", "--config", f"apps/genomics/configs/{config}", "--trainer.default_root_dir", str(root)])
            done[config] = cli.trainer.checkpoint_callback.best_model_path
        return done[config]

    return checkpoint
