"""Average the weights of the last N checkpoints (Vaswani et al. 2017; fairseq's average_checkpoints).

    python -m core.training.average runs/g2p/lightning_logs/version_0/checkpoints --last 5 -o avg.ckpt
    python -m core.training.average a.ckpt b.ckpt c.ckpt -o avg.ckpt

The output is a normal checkpoint: ``translate``/``export`` and ``trainer.test(ckpt_path=...)`` take it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import UserError, entry_point
from core.training.checkpoints import average_checkpoints


def pick(inputs: list[str], last: int | None) -> list[Path]:
    paths: list[Path] = []
    for item in map(Path, inputs):
        paths += sorted(item.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if item.is_dir() else [item]
    paths = [p for p in paths if p.name != "last.ckpt" or len(paths) == 1]  # last.ckpt duplicates a step
    if not paths:
        raise UserError(f"no checkpoints (*.ckpt) in {', '.join(inputs)}")
    return paths[-last:] if last else paths


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="checkpoint files or folders of them")
    p.add_argument("--last", type=int, help="average only the newest N (by modification time)")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    paths = pick(a.inputs, a.last)
    if Path(a.output).exists():
        raise UserError(f"{a.output} exists; choose another name (nothing is overwritten)")
    out = average_checkpoints(paths, a.output)
    print(f"averaged {len(paths)} checkpoints -> {out}: " + ", ".join(p.name for p in paths))


if __name__ == "__main__":
    main()
