"""DNA data: tokens, reverse complement, gene labels (pyrodigal and GFF3), contiguous splits,
evaluation tiling, and bad input."""
import gzip
import warnings

import numpy as np
import pytest

from apps.genomics.dna.data import IGNORE, DNADataModule, TiledWindows, TrainWindows, collate
from apps.genomics.genes import SWAP_STRAND, paint_cds, pyrodigal_labels, read_cds_labels
from apps.genomics.genome import Segment, bundled_fasta, load_genome, split_record
from apps.genomics.nucleotides import complement_table, dna_tokenizer, encode_sequence, encoder_table
from core.data.reports import DataWarning
from core.errors import DataError, UserError


def test_tokens_fold_case_and_ambiguity_codes():
    tok = dna_tokenizer()
    ids = encode_sequence("ACGTNacgtRy", encoder_table(tok))
    assert tok.decode(ids) == "ACGTNACGTNN"
    masked = dna_tokenizer(keep_case=True)
    assert masked.decode(encode_sequence("ACgtr", encoder_table(masked))) == "ACgtn"


@pytest.mark.parametrize("keep_case", [False, True])
def test_reverse_complement_of_tokens(keep_case):
    tok = dna_tokenizer(keep_case)
    table, comp = encoder_table(tok), complement_table(tok)
    text = "AACGTTGCAN" + ("acgtn" if keep_case else "")
    rc = comp[encode_sequence(text, table)[::-1]]
    expected = text[::-1].translate(str.maketrans("ACGTNacgtn", "TGCANtgcan"))
    assert tok.decode(rc) == expected


def test_labels_follow_the_strand_under_reverse_complement():
    """A forward gene read from the other strand is a reverse gene at mirrored coordinates."""
    n = 40
    forward = np.zeros(n, dtype=np.int64)
    paint_cds(forward, 5, 16, +1)
    paint_cds(forward, 20, 37, -1)
    mirrored = np.zeros(n, dtype=np.int64)
    paint_cds(mirrored, n - 1 - 16, n - 1 - 5, -1)
    paint_cds(mirrored, n - 1 - 37, n - 1 - 20, +1)
    np.testing.assert_array_equal(SWAP_STRAND[forward[::-1]], mirrored)
    assert forward[5:11].tolist() == [1, 2, 3, 1, 2, 3]
    assert forward[32:38].tolist() == [6, 5, 4, 6, 5, 4]  # a reverse gene starts at its end


def test_pyrodigal_labels_mark_every_gene_from_its_start_codon():
    import pyrodigal

    path = bundled_fasta().with_name("GCF_001457455.1_NCTC11397_genomic_100kb.fna.gz")
    seq = "".join(line.strip() for line in gzip.open(path, "rt") if not line.startswith(">"))
    labels, count = pyrodigal_labels(seq)
    finder = pyrodigal.GeneFinder()
    finder.train(seq)
    genes = finder.find_genes(seq)
    assert count == len(genes) > 50
    assert 0.5 < (labels != 0).mean() < 0.98
    spans = [(g.begin, g.end) for g in genes]
    checked = 0
    for gene in genes:
        alone = all(e < gene.begin or b > gene.end for b, e in spans if (b, e) != (gene.begin, gene.end))
        if gene.strand > 0 and not gene.partial_begin and alone:  # (overlaps keep the first gene's labels)
            assert seq[gene.begin - 1:gene.begin + 2] in ("ATG", "GTG", "TTG")
            assert labels[gene.begin - 1:gene.begin + 5].tolist() == [1, 2, 3, 1, 2, 3]
            assert labels[gene.end - 1] == 3  # the stop codon ends on codon position 3
            checked += 1
    assert checked > 10


def test_gff_cds_with_phase_and_bad_lines(tmp_path):
    gff = tmp_path / "genes.gff"
    gff.write_text("##gff-version 3\n"
                   "chr1\tsrc\tgene\t1\t12\t.\t+\t.\tID=g1\n"
                   "chr1\tsrc\tCDS\t1\t12\t.\t+\t0\tID=c1\n"
                   "chr1\tsrc\tCDS\t20\t28\t.\t-\t1\tID=c2\n"
                   "chrX\tsrc\tCDS\t1\t3\t.\t+\t0\tID=c3\n"
                   "chr1\tsrc\tCDS\t25\t99\t.\t+\t0\tID=c4\n"
                   "chr1\tsrc\tCDS\t2\t4\t.\t?\t0\tID=c5\n"
                   "only\tthree\tcolumns\n")
    labels, report = read_cds_labels(gff, {"chr1": 30})
    assert labels["chr1"][:12].tolist() == [1, 2, 3] * 4
    # minus strand, phase 1: the first base (at the end, 28) is the last of a codon begun upstream
    assert labels["chr1"][19:28].tolist()[::-1] == [6, 4, 5, 6, 4, 5, 6, 4, 5]
    assert set(report.skipped) == {"unknown sequence id", "bad coordinates", "bad strand", "not 9 tab-separated columns"}
    assert str(gff) in report.summary()


def test_bed_cds_paint_what_the_same_gff_paints(tmp_path):
    gff = tmp_path / "genes.gff3"
    gff.write_text("chr1\tsrc\tCDS\t1\t12\t.\t+\t0\tID=c1\nchr1\tsrc\tCDS\t20\t28\t.\t-\t0\tID=c2\n")
    bed = tmp_path / "genes.bed"
    bed.write_text("track name=genes\n# comment\nchr1\t0\t12\tc1\t0\t+\n"
                   "chr1\t15\t30\tc2\t0\t-\t19\t28\t0\t1\t15\t0\n"  # BED12: the thick part is the CDS
                   "chrX\t0\t3\tc3\t0\t+\nchr1\t5\t99\tc4\t0\t+\nchr1\t1\t4\tc5\t0\t.\nchr1\t1\t4\n")
    want, _ = read_cds_labels(gff, {"chr1": 30})
    got, report = read_cds_labels(bed, {"chr1": 30})
    np.testing.assert_array_equal(got["chr1"], want["chr1"])
    assert report.total == 6 and set(report.skipped) == {"unknown sequence id", "bad coordinates", "bad strand",
                                                          "fewer than 6 columns"}


def test_splits_are_contiguous_regions():
    tokens = np.arange(1000)
    parts = split_record("r", tokens, None, 0.05, 0.1)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [850, 50, 100]
    np.testing.assert_array_equal(np.concatenate([parts[k].tokens for k in ("train", "valid", "test")]), tokens)


@pytest.mark.parametrize("context", [0, 1])
@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 23, 24, 25])
def test_evaluation_windows_score_every_base_once(context, n):
    segments = [Segment("a", np.arange(n) + 4, None), Segment("b", np.arange(5) + 100, None)]
    tiles = TiledWindows(segments, 8 + context, context)
    batch = collate([tiles[i] for i in range(len(tiles))])
    targets = batch["targets"][:, context:]  # an LM scores position j from position j - 1
    scored = sorted(targets[targets != IGNORE].tolist())
    assert scored == list(range(4 + context, 4 + n)) + list(range(100 + context, 105))


def test_training_windows_come_from_either_strand_with_matching_labels():
    tok = dna_tokenizer()
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 200))
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    labels = np.zeros(200, dtype=np.int64)
    paint_cds(labels, 30, 170, +1)
    rc_labels = SWAP_STRAND[labels[::-1]]
    data = TrainWindows([Segment("r", encode_sequence(seq, encoder_table(tok)), labels)], 12, 300,
                        complement_table(tok))
    strands = []
    for i in range(len(data)):
        item = data[i]
        text, lab = tok.decode(item["ids"]), item["labels"].numpy()
        if text in seq:
            at = seq.index(text)
            np.testing.assert_array_equal(lab, labels[at:at + 12])
            strands.append("+")
        else:
            at = rc.index(text)  # (raises if the window is from neither strand)
            np.testing.assert_array_equal(lab, rc_labels[at:at + 12])
            strands.append("-")
    assert 0.35 < strands.count("+") / len(strands) < 0.65


def write_fasta(path, records):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records))
    return path


def test_bad_fasta_records_are_skipped_with_one_warning(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", [("good", "ACGT" * 100), ("bad", "ACGT?X"), ("empty", "")])
    before = fasta.read_bytes()
    with pytest.warns(DataWarning, match="g.fa: skipped 2 of 3"):
        splits = load_genome(dna_tokenizer(), fasta)
    assert sum(len(s) for part in splits.values() for s in part) == 400
    assert fasta.read_bytes() == before


def test_nothing_usable_is_one_clear_error(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", [("bad", "HELLO WORLD!")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match="g.fa: no usable records"):
            load_genome(dna_tokenizer(), fasta)


def test_options_a_user_can_get_wrong(tmp_path):
    with pytest.raises(UserError, match="needs its annotation"):
        DNADataModule(task="tag", fasta=str(tmp_path / "g.fa"))
    with pytest.raises(UserError, match="task must be one of"):
        DNADataModule(task="classify")
    gff = tmp_path / "g.gff"
    gff.write_text("chr9\tsrc\tCDS\t1\t3\t.\t+\t0\tID=x\n")
    fasta = write_fasta(tmp_path / "g.fa", [("chr1", "ACGT" * 10)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match="g.gff: no usable CDS"):
            load_genome(dna_tokenizer(), fasta, gff, labels=True)
