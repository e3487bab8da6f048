"""core.data readers on tiny files: every bad-record kind skipped and counted with its line number,
gzip read like plain text, JSONL key aliases, header-checked CSV."""
import gzip
import json

import pytest

from core.data import SkipReport, read_delimited, read_fasta, read_jsonl
from core.data.readers import jsonl_rows
from core.errors import DataError

KEYS = (("audio", "audio_filepath"), "text", "duration")


def test_jsonl_aliases_missing_keys_and_bad_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"audio": "a.wav", "text": "hi", "duration": 1.0, "speaker": "s"}).encode(),
        json.dumps({"audio_filepath": "b.wav", "text": "yo", "duration": 2, "extra": 1}).encode(),  # NeMo's key
        json.dumps({"audio": "c.wav", "duration": 1.0}).encode(),  # 3: no text
        b"{not json",  # 4
        b"[1, 2]",  # 5: JSON but not an object
        b"",  # blank: ignored, not counted
        b'{"text": "caf\xe9"}',  # 7: invalid UTF-8
        json.dumps({"audio_filepath": "d.wav", "text": "x"}).encode(),  # 8: no duration
    ]) + b"\n")
    rows, report = read_jsonl(path, KEYS, optional=("speaker",))
    assert rows == [(1, {"audio": "a.wav", "text": "hi", "duration": 1.0, "speaker": "s"}),
                    (2, {"audio": "b.wav", "text": "yo", "duration": 2})]
    assert report.total == 7
    assert report.skipped == {"missing key": [3, 8], "invalid JSON": [4, 5], "invalid UTF-8": [7]}
    summary = report.summary()
    assert summary.startswith(f"{path}: skipped 5 of 7 records")
    assert 'missing key (expected keys "audio" (or "audio_filepath"), "text", "duration"): lines 3, 8' in summary


def test_jsonl_limit_stops_reading(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"a": i}) + "\n" for i in range(10)) + "{bad\n")
    rows, report = read_jsonl(path, ["a"], limit=3)
    assert [r["a"] for _, r in rows] == [0, 1, 2] and report.total == 3 and not report.skipped
    report = SkipReport(str(path))  # the generator stops wherever the caller's done() says
    seen = []
    for lineno, row in jsonl_rows(path, report, ["a"], done=lambda: len(seen) >= 2):
        if row["a"] % 2 == 0:
            seen.append(lineno)
    assert seen == [1, 3] and report.total == 3


def test_delimited_counts_ranges_and_lines(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("a|b\na|b|c\na\na|b|c|d\n\na|b\n")
    rows, report = read_delimited(path, "|", (2, 3))
    assert rows == [(1, ["a", "b"]), (2, ["a", "b", "c"]), (6, ["a", "b"])]
    assert report.skipped == {"missing column": [3], "extra column": [4]} and report.total == 5
    rows, report = read_delimited(path, "|", 2)
    assert [line for line, _ in rows] == [1, 6] and report.skipped["extra column"] == [2, 4]


def test_csv_header_names_and_quoting(tmp_path):
    path = tmp_path / "seqs.csv"
    path.write_text('id,sequence,label\n1,ACGT,"1,5"\n2,GG\n3,"TT,1\n4,AC,0\n')
    rows, report = read_delimited(path, ",", ("sequence", "label"), quote='"')
    assert rows == [(2, {"sequence": "ACGT", "label": "1,5"}), (5, {"sequence": "AC", "label": "0"})]
    assert report.total == 4  # the header is not a record
    assert report.skipped == {"missing column": [3], "bad quoting": [4]}
    with pytest.raises(DataError, match=r"seqs\.csv: header line 1 lacks column\(s\) smiles"):
        read_delimited(path, ",", ("smiles", "label"), quote='"')


FASTA = (">chr1 first chromosome\nACGT\nacgt\n\n"
         ">chr2\n"  # 5: empty sequence
         ">chr3 ok\nGGGN NN\n"
         ">chr1 again\nAC\n"  # 8: duplicate id
         ">chr4\nACXZ\n"  # 10: invalid characters
         "> \nAC\n"  # 12: empty id
         ">chr5\nTT\n")


def test_fasta_records_and_skips_gzip_or_not(tmp_path):
    plain = tmp_path / "g.fa"
    plain.write_text("ACGT\n" + FASTA)  # a sequence before any header
    packed = tmp_path / "g.fa.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    alphabet = set("ACGTNacgtn")
    for path in (plain, packed):
        records, report = read_fasta(path, alphabet)
        assert [(r.id, r.description, r.sequence, r.line) for r in records] == [
            ("chr1", "first chromosome", "ACGTacgt", 2), ("chr3", "ok", "GGGNNN", 7), ("chr5", "", "TT", 15)]
        assert report.skipped == {"sequence before header": [1], "empty sequence": [6], "duplicate id": [9],
                                  "invalid characters 'X', 'Z'": [11], "empty id": [13]}
        assert report.total == 8
    assert [r.id for r in read_fasta(packed, limit=2)[0]] == ["chr1", "chr3"]


def test_fasta_bad_bytes_and_broken_gzip(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_bytes(b">a\nAC\xffGT\n>b\nAC\n")
    records, report = read_fasta(path)
    assert [r.id for r in records] == ["b"] and report.skipped == {"invalid UTF-8": [1]}
    broken = tmp_path / "broken.fa.gz"
    broken.write_bytes(gzip.compress(b">a\nACGT\n" * 100)[:-6])
    with pytest.raises(DataError, match=r"broken\.fa\.gz: broken gzip file"):
        read_fasta(broken)
    (tmp_path / "empty.fa.gz").write_bytes(gzip.compress(b"\n"))
    with pytest.raises(DataError, match="file is empty"):
        read_fasta(tmp_path / "empty.fa.gz")
