"""``make demo``: train G2P on CMUdict, test it, export ONNX, and pronounce a few words with onnxruntime.

Each step is the same command a user would type; this file only chains them and finds the checkpoint.
"""
from __future__ import annotations

import sys
import time

from apps.translation import export, plot, train
from apps.translation.translate import Translator
from core.errors import entry_point
from core.generation import GenerationConfig

CONFIG = "apps/translation/configs/g2p.yaml"
WORDS = ["seqlab", "transformer", "onnxruntime", "pronunciation", "mississippi", "quixotic"]


@entry_point
def main(argv: list[str] | None = None) -> None:
    extra = list(argv if argv is not None else sys.argv[1:])
    start = time.time()
    print(f"== 1/5 train: python -m apps.translation.train fit --config {CONFIG}", flush=True)
    cli = train.main(["fit", "--config", CONFIG, *extra])
    ckpt = cli.trainer.checkpoint_callback.best_model_path or cli.trainer.checkpoint_callback.last_model_path
    print(f"== 2/5 test: python -m apps.translation.train test --config {CONFIG} --ckpt_path {ckpt}", flush=True)
    train.main(["test", "--config", CONFIG, *extra, "--ckpt_path", ckpt])
    out = f"{cli.trainer.log_dir}/onnx"
    print(f"== 3/5 export: python -m apps.translation.export --checkpoint {ckpt} --out {out}", flush=True)
    export.main(["--checkpoint", ckpt, "--out", out])
    print(f"== 4/5 translate with onnxruntime: python -m apps.translation.translate --onnx {out} --beam 4 --nbest 2", flush=True)
    results = Translator(onnx_dir=out)(WORDS, GenerationConfig(strategy="beam", beam_size=4, n_best=2, max_len=40))
    for word, nbest in zip(WORDS, results):
        print(f"  {word:15s} " + "  |  ".join(f"{text} ({score:.2f})" for text, score in nbest))
    picture = f"{cli.trainer.log_dir}/attention.png"
    print(f"== 5/5 plot: python -m apps.translation.plot --checkpoint {ckpt} --text pronunciation -o {picture}", flush=True)
    plot.main(["--checkpoint", ckpt, "--text", "pronunciation", "-o", picture])
    print(f"demo finished in {time.time() - start:.0f} s; checkpoint {ckpt}; ONNX in {out}")


if __name__ == "__main__":
    main()
