"""OMR data: **kern systems cut from real music21 scores, bekern tokens, engraving, the corpus
builder (split by piece), and the SMT metrics."""
import json

import numpy as np
import pytest

from apps.vision.data import main as data_main
from apps.vision.metrics import EngravableFraction, character_error_rate, line_error_rate, symbol_error_rate
from apps.vision.omr.corpus import corpus_scores, piece_id
from apps.vision.omr.engrave import engrave
from apps.vision.omr.kern import LINE, SPACE, TAB, detokenize, excerpts, read_kern, tokenize
from core.errors import DataError

CHORALE = next(p for p in corpus_scores() if p.name == "bwv277.krn")  # 4 voices + lyrics spines

SPLIT_SPINES = """**kern\t**kern
*clefF4\t*clefG2
*^\t*
4C\t4c\t4e
*v\t*v\t*
*-\t*-
"""


def test_excerpts_are_complete_kern_files_with_the_state_carried_in():
    score = read_kern(CHORALE)
    assert score.n_spines == 4  # the **silbe lyric spines are dropped
    systems = excerpts(score, 3)
    assert len(systems) == -(-len(score.measures) // 3)
    later = systems[2].split("\n")
    assert later[0] == "\t".join(["**kern"] * 4) and later[-2] == "\t".join(["*-"] * 4)
    assert later[1] == "*clefF4\t*clefGv2\t*clefG2\t*clefG2"  # clefs, key and meter from the piece's start
    assert later[2] == "\t".join(["*k[]"] * 4) and later[3] == "\t".join(["*M4/4"] * 4)
    assert sum(line.startswith("=") for line in later) == 3
    body = [line for line in later if not line.startswith(("*", "="))]
    assert body and not any(c in line for line in body for c in "/\\LJ")  # stems and beams removed


def test_bekern_round_trip_and_sub_tokens():
    score = read_kern(CHORALE)
    for system in excerpts(score, 2):
        assert detokenize(tokenize(system)) == system
    tokens = tokenize("**kern\t**kern\n4.cc# 8e\t[2BB-\n*-\t*-\n")
    assert tokens[:3] == ["**kern", TAB, "**kern"] and tokens[3] == LINE
    assert tokens[4:12] == ["4.", "cc", "#", SPACE, "8", "e", TAB, "["]
    assert tokens[12:15] == ["2", "BB", "-"]


def test_unreadable_scores_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="splits or merges spines"):
        read_kern("split.krn", SPLIT_SPINES)
    with pytest.raises(DataError, match="no \\*\\*kern spine"):
        read_kern("text.krn", "**text\n*-\n")
    with pytest.raises(DataError, match="line 3 has 1 spines"):
        read_kern("ragged.krn", "**kern\t**kern\n4c\t4d\n4e\n*-\t*-\n")


def test_engraving_draws_the_system():
    image = engrave(excerpts(read_kern(CHORALE), 3)[0])
    assert image.dtype == np.uint8 and image.ndim == 2
    assert image.shape[1] > image.shape[0] > 100  # four staves, wider than tall
    assert (image < 128).mean() > 0.02 and (image == 255).mean() > 0.5  # ink on paper
    assert engrave("not kern at all") is None


def test_corpus_builder_splits_by_piece(tmp_path, capsys):
    out = tmp_path / "omr"
    data_main(["omr", "--out", str(out), "--limit", "3", "--jobs", "1", "--measures", "4"])  # three chorales
    summary = json.loads((out / "build.json").read_text())
    rows = {s: [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()]
            for s in ("train", "valid", "test")}
    assert sum(summary["systems"].values()) == sum(map(len, rows.values())) > 0
    pieces = {s: {r["piece"] for r in split} for s, split in rows.items()}
    assert not (pieces["train"] & pieces["valid"]) and not (pieces["train"] & pieces["test"])
    first = rows["train"][0]
    assert (out / first["image"]).stat().st_size > 1000 and first["kern"].startswith("**kern")
    assert sum(summary["skipped_pieces"].values()) + sum(summary["pieces"].values()) == 3
    with pytest.raises(SystemExit) as exit_:  # never overwrites a built corpus
        data_main(["omr", "--out", str(out), "--limit", "1"])
    assert exit_.value.code == 2 and "not empty" in capsys.readouterr().err
    assert piece_id(corpus_scores()[0]).count("/") == 1


def test_metrics_are_corpus_level_percentages():
    ref = "**kern\n4c\n4d\n*-\n"
    hyp = "**kern\n4c\n4e\n*-\n"
    ser, cer, ler = symbol_error_rate(), character_error_rate(), line_error_rate()
    for metric in (ser, cer, ler):
        metric.update([hyp, ref], [ref, ref])
    n_tokens = len(tokenize(ref))
    assert ser.compute().item() == pytest.approx(100 * 1 / (2 * n_tokens))  # one pitch token wrong
    assert cer.compute().item() == pytest.approx(100 * 1 / (2 * len(ref.rstrip())))
    assert ler.compute().item() == pytest.approx(100 * 1 / 8)
    engravable = EngravableFraction()
    engravable.update([excerpts(read_kern(CHORALE), 3)[0], "garbage"])
    assert engravable.compute().item() == pytest.approx(50.0)


def test_spine_errors_are_caught_before_verovio_sees_them():
    from apps.vision.omr.engrave import engrave_svg, readable
    from apps.vision.omr.kern import spine_error

    good = "**kern\t**kern\n*^\t*\n4c\t4e\t4g\n*v\t*v\t*\n=\t=\n*-\t*-\n"
    assert spine_error(good) is None and readable(good)
    broken = {"**kern\t**kern\n4c\n*-\t*-\n": "line 2 has 1 fields for 2 spines",
              "**kern\t**kern\n=1\t\t=1\n*-\t*-\n": "line 2 has an empty field",
              "**kern\n*^\n4c\n*-\n": "line 3 has 1 fields for 2 spines",
              "**kern\n4c\n": "spines never end"}
    for kern, reason in broken.items():
        assert reason in spine_error(kern)
        # Verovio aborts the process on these: a crash here would end the test run
        assert engrave_svg(kern) is None and not readable(kern)
