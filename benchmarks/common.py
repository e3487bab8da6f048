"""Shared by benchmark scripts: hardware description, appending results to BENCHMARKS.md, and
training an app within a wall-clock budget."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}){gpu}")


def record(title: str, command: str, table: str, notes: str = "") -> None:
    """Append one result block to BENCHMARKS.md (newest last) and print it."""
    block = (f"\n## {title}\n\n- command: `{command}`\n- date: {_dt.date.today().isoformat()}\n"
             f"- hardware: {hardware()}\n\n{table.strip()}\n" + (f"\n{notes.strip()}\n" if notes else ""))
    print(block)
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nEvery block is one run of the named command; newest last.\n")
    with path.open("a", encoding="utf-8") as f:
        f.write(block)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fit_final(train: Callable, args: list[str]) -> tuple[str, float, int]:
    """``train(["fit", *args])`` (an app's ``train.main``) -> (checkpoint of the weights at the
    end, seconds, optimiser steps). ModelCheckpoint only saves at validation, which need not
    coincide with the last step, where a budget or schedule ends: that one is saved here."""
    t0 = time.time()
    cli = train(["fit", *args])
    seconds = time.time() - t0
    ckpt = str(Path(cli.trainer.log_dir) / "checkpoints" / "final.ckpt")
    cli.trainer.save_checkpoint(ckpt)
    return ckpt, seconds, cli.trainer.global_step
