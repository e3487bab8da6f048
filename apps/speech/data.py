"""Speech data: command line for building the bundled corpus.

``python -m apps.speech.data espeak --out DIR`` synthesizes the default corpus (see
:mod:`apps.speech.corpus`) and prints how many utterances each split got.
"""
from __future__ import annotations

import argparse

from apps.speech.corpus import build_espeak_corpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.speech.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    espeak = commands.add_parser("espeak", help="synthesize the default corpus with espeak-ng from Bible verses")
    espeak.add_argument("--out", required=True, help="folder for wavs/, {train,valid,test}.jsonl and README.txt")
    espeak.add_argument("--n-sentences", type=int, default=2000)
    espeak.add_argument("--seed", type=int, default=0)
    espeak.add_argument("--jobs", type=int, default=2, help="espeak-ng processes run at once")
    espeak.add_argument("--overwrite", action="store_true", help="rebuild even if --out is not empty")
    args = parser.parse_args(argv)

    summary = build_espeak_corpus(args.out, args.n_sentences, args.seed, jobs=args.jobs, overwrite=args.overwrite)
    splits = ", ".join(f"{name} {n}" for name, n in summary["utterances"].items())
    print(f"{summary['out']}: {splits} utterances, {summary['hours']:.2f} hours, {summary['skipped']} skipped")


if __name__ == "__main__":
    main()
