"""Shared OMR fixtures: a tiny engraved corpus and one checkpoint trained on it, each built once."""
import pytest


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Three engraved chorales (what the bundled builder writes)."""
    from apps.vision.omr.corpus import build_omr_corpus

    out = tmp_path_factory.mktemp("omr") / "corpus"
    build_omr_corpus(out, measures=2, limit=3, jobs=1, progress=False)
    return out


@pytest.fixture(scope="session")
def omr_run(corpus, tmp_path_factory):
    """``omr_tiny.yaml`` trained through the CLI (a few steps): the CLI object."""
    from apps.vision.train import main

    return main(["fit", "--config", "apps/vision/configs/omr_tiny.yaml", "--data.init_args.corpus_dir", str(corpus),
                 "--trainer.default_root_dir", str(tmp_path_factory.mktemp("omr_run"))])


@pytest.fixture(scope="session")
def omr_checkpoint(omr_run) -> str:
    return omr_run.trainer.checkpoint_callback.best_model_path
