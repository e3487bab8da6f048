"""Annotate genes in, score, classify or embed the sequences of a FASTA file with a trained checkpoint.

    python -m apps.genomics.predict --checkpoint CKPT --fasta F [--output T.tsv] [--gff G.gff3]
           [--embeddings E.npy] [--min-gene 90] [--window N] [--batch-size 8]
    python -m apps.genomics.predict --checkpoint RT_CKPT --smiles M.csv [--output T.tsv]
    python -m apps.genomics.predict --checkpoint CKPT [--plot P.png]

With ``--fasta``, a gene tagger writes a table row per record (``line id length coding_fraction
genes status``) and, with ``--gff``, the predicted genes as GFF3 CDS features: maximal runs of one
strand's labels of at least ``--min-gene`` bases (a tagger's short stray calls are not genes). A
language model writes ``line id length bits_per_nt status``. ``--embeddings`` saves one row per
record: the mean of the model's last hidden state over the record's bases (a tagger's encoder
reads both strands' context; a language model's state is causal). A sequence-property model
(peptides, DNA classes) writes ``line id length prediction status``, plus ``p_<class>`` columns
for a classifier, and its pooled vector as the embedding. A Regression Transformer reads
``--smiles`` (:mod:`apps.genomics.molecule.inference`) and writes ``line smiles <property>...
rdkit_<property>... status``: its predictions beside RDKit's computed values.

Row i of the table and of the embeddings answers the i-th FASTA entry (or SMILES record). An entry that cannot be
read (no id, no sequence, a character outside the model's alphabet, longer than a property
model reads) gets a row with its header line,
``status`` saying why, and a NaN embedding; the others are predicted and the exit status is 1
(``core.errors.EXIT_SKIPPED``); 0 when every entry was predicted, 2 on a fatal error.

Without ``--fasta`` the command reads the checkpoint's own held-out test data and prints the
tagger's agreement with pyrodigal (macro F1, MCC, accuracy, coding F1), the LM's bits per
nucleotide, or a property model's or RT's test metrics; ``--plot`` draws predicted against pyrodigal's
genes (tagger) or predicted against true values (regression).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

from apps.genomics.dna.data import IGNORE, DNADataModule, TiledWindows, collate
from apps.genomics.dna.task import DNALMTask, GeneTagTask
from apps.genomics.genes import NON_CODING, coding_stretches, gff3_lines
from apps.genomics.genome import Segment
from apps.genomics.metrics import tagging_metrics
from apps.genomics.molecule.data import MoleculeDataModule
from apps.genomics.molecule.data import collate as collate_molecules
from apps.genomics.molecule.task import RegressionTransformerTask
from apps.genomics.nucleotides import ALPHABET, encode_sequence, encoder_table
from apps.genomics.property.data import PropertyDataModule
from apps.genomics.property.task import PropertyTask, property_metrics
from core.data.readers import fasta_records
from core.data.reports import SkipReport
from core.errors import EXIT_SKIPPED, UserError, entry_point
from core.io import atomic_write, atomic_write_text
from core.training import BaseTask, datamodule_from_checkpoint, datamodule_options


@dataclass
class Prediction:
    """What the model says about one sequence (every base scored exactly once)."""

    labels: np.ndarray | None  # int64 [n] predicted gene labels (tagger)
    nll: float  # summed next-base negative log-likelihood in nats (LM), over ``scored`` bases
    scored: int
    embedding: np.ndarray  # float32 [D]


class Predictor:
    """A checkpoint's model over whole sequences of any length, tiled as evaluation tiles them
    (:class:`~apps.genomics.dna.data.TiledWindows`), so the held-out figures it prints are the
    ones ``train test`` reports for the same region."""

    def __init__(self, task: BaseTask, window: int, batch_size: int):
        self.task, self.batch_size = task, batch_size
        self.is_lm = isinstance(task, DNALMTask)
        self.window = window + 1 if self.is_lm else window  # an LM window predicts ``window`` bases
        self.model = task.model.eval()
        self.tokenizer = task.tokenizers["dna"]
        self.table = encoder_table(self.tokenizer)

    def encode(self, sequence: str) -> np.ndarray:
        return encode_sequence(sequence, self.table)

    @torch.inference_mode()
    def __call__(self, segment: Segment) -> Prediction:
        tiles = TiledWindows([segment], self.window, 1 if self.is_lm else 0)
        labels = None if self.is_lm else np.full(len(segment), NON_CODING, dtype=np.int64)
        total, count, nll, scored = 0.0, 0, 0.0, 0
        for first in range(0, len(tiles), self.batch_size):
            spans = tiles.tiles[first:first + self.batch_size]  # (segment, start, size, skip)
            batch = collate([tiles[i] for i in range(first, first + len(spans))])
            if self.is_lm:  # position t predicts base t + 1
                hidden = self.model.decoder(self.model.embed(batch["ids"][:, :-1]))[0]
                targets = batch["targets"][:, 1:]
                owned = targets != IGNORE
                nll += float(F.cross_entropy(self.model.head(hidden[owned]).float(), targets[owned], reduction="sum"))
                scored += int(owned.sum())
            else:
                hidden = self.model.features(batch["ids"], batch["mask"])
                preds = self.model.head(hidden).argmax(-1).numpy()
                owned = torch.zeros(preds.shape, dtype=torch.bool)
                for row, (_, start, size, skip) in enumerate(spans):
                    labels[start + skip:start + size] = preds[row, skip:size]
                    owned[row, skip:size] = True
            total = total + hidden.float()[owned].sum(0)
            count += int(owned.sum())
        embedding = (total / max(count, 1)).numpy().astype(np.float32)
        return Prediction(labels, nll, scored, embedding)


def read_entries(path: str, problem, encode) -> tuple[list[dict], SkipReport]:
    """Every FASTA entry in file order as ``{line, id, ids or None, status}``; the reader's own
    skips (no id, no sequence, bad UTF-8, a repeated id) become rows too. ``problem(sequence)``
    says why the model cannot read a sequence (None: it can)."""
    report = SkipReport(path)
    rows = []
    for rec in fasta_records(Path(path), report):  # alphabet checked here, so the record keeps its row
        reason = problem(rec.sequence)
        if reason:
            report.skip(reason, rec.line)
        rows.append({"line": rec.line, "id": rec.id, "ids": None if reason else encode(rec.sequence),
                     "status": reason or "ok"})
    known = {r["line"] for r in rows}
    for reason, lines in report.skipped.items():
        rows += [{"line": line, "id": "", "ids": None, "status": reason} for line in lines if line not in known]
    rows.sort(key=lambda r: r["line"])
    if not any(r["ids"] is not None for r in rows):
        report.require(0)
    return rows, report


def not_dna(sequence: str) -> str | None:
    bad = sorted(set(sequence) - ALPHABET)
    return "not DNA: " + " ".join(repr(c) for c in bad[:5]) if bad else None


def write_outputs(a, table: list[str], embeddings: list[np.ndarray], report: SkipReport) -> int:
    text = "".join(table)
    if a.output:
        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
    if embeddings and a.embeddings:
        atomic_write(a.embeddings, lambda tmp: np.save(open(tmp, "wb"), np.stack(embeddings)))
    if report.n_skipped:
        print(f"warning: {report.summary()}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


def predict_fasta(a, predictor: Predictor) -> int:
    if a.gff and predictor.is_lm:
        raise UserError(f"{a.checkpoint}: a language model; --gff needs a gene tagger checkpoint")
    rows, report = read_entries(a.fasta, not_dna, predictor.encode)
    head = ["line", "id", "length"] + (["bits_per_nt"] if predictor.is_lm else ["coding_fraction", "genes"])
    table, gff, embeddings = ["\t".join(head + ["status"]) + "\n"], ["##gff-version 3\n"], []
    width = predictor.model.head.in_features
    for r in rows:
        if r["ids"] is None:
            table.append("\t".join([str(r["line"]), r["id"]] + [""] * (len(head) - 2) + [r["status"]]) + "\n")
            embeddings.append(np.full(width, np.nan, dtype=np.float32))
            continue
        seg = Segment(r["id"], r["ids"], None)
        pred = predictor(seg)
        if predictor.is_lm:
            values = [f"{pred.nll / pred.scored / math.log(2):.4f}" if pred.scored else "nan"]
        else:
            genes = coding_stretches(pred.labels, a.min_gene)
            values = [f"{float((pred.labels != NON_CODING).mean()):.4f}", str(len(genes))]
            gff.append(f"##sequence-region {seg.record} 1 {len(seg)}\n")
            gff += gff3_lines(seg.record, genes)
        table.append("\t".join([str(r["line"]), r["id"], str(len(seg))] + values + [r["status"]]) + "\n")
        embeddings.append(pred.embedding)
    if a.gff:
        atomic_write_text(a.gff, "".join(gff))
    return write_outputs(a, table, embeddings, report)


def predict_held_out(a, predictor: Predictor) -> int:
    """The checkpoint genome's test region, against pyrodigal's labels (tagger) or as bits/nt (LM)."""
    dm = datamodule_from_checkpoint(DNADataModule, a.checkpoint, task="lm" if predictor.is_lm else "tag")
    segments = dm.segments("test")
    if not segments:
        raise UserError(f"{a.checkpoint}: its genome has no held-out test region (test_fraction 0)")
    preds = [predictor(s) for s in segments]
    bases = sum(len(s) for s in segments)
    if predictor.is_lm:
        bits = sum(p.nll for p in preds) / sum(p.scored for p in preds) / math.log(2)
        print(f"held-out test region ({bases:,} bases): {bits:.4f} bits per nucleotide")
        return 0
    metrics = tagging_metrics()
    for s, p in zip(segments, preds):
        for m in metrics.values():
            m.update(torch.from_numpy(p.labels), torch.from_numpy(s.labels))
    scores = {k: float(m.compute()) for k, m in metrics.items()}
    print(f"held-out test region ({bases:,} bases) against pyrodigal: "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    if a.plot:
        from apps.genomics.plot import gene_track

        gene_track(preds[0].labels, segments[0].labels, a.plot, title=f"{segments[0].record}, held-out region",
                   bases=a.track_bases, min_gene=a.min_gene)
        print(f"wrote {a.plot}")
    return 0


def predict_properties(a, task: PropertyTask) -> int:
    """A property model over a FASTA file, or over its own test split (metrics, scatter)."""
    dm = datamodule_from_checkpoint(PropertyDataModule, a.checkpoint)
    dm.use_tokenizers_json(task.tokenizers_json)
    limit = task.arch.encoder.max_len
    if a.fasta is None:
        examples = dm.splits()["test"]
        if not examples:
            raise UserError(f"{a.checkpoint}: its data has no test split")
        values, _ = property_values(task, [e.ids for e in examples], a.batch_size)
        truth = torch.tensor([float(e.label) if task.kind == "regression" else task.classes.index(e.label)
                              for e in examples])
        metrics = property_metrics(task.kind, len(task.classes or ()))
        for m in metrics.values():
            m.update(values, truth)
        scores = {k: float(m.compute()) for k, m in metrics.items()}
        name = dm.target if dm.files["train"] is None and dm.folder is None else "label"
        print(f"test split ({len(examples):,} sequences, {name}): " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if a.plot:
            if task.kind != "regression":
                raise UserError("--plot draws predicted against true values: a regression checkpoint")
            from apps.genomics.plot import property_scatter

            property_scatter([(values.numpy(), truth.numpy(), name, scores)], a.plot)
            print(f"wrote {a.plot}")
        return 0
    rows, report = read_entries(a.fasta, lambda seq: dm.alphabet.problem(seq, limit), dm.alphabet.encode)
    good = [r for r in rows if r["ids"] is not None]
    values, vectors = property_values(task, [r["ids"] for r in good], a.batch_size)
    results = iter(zip(values, vectors))  # (in row order, like ``good``)
    extra = [f"p_{c}" for c in task.classes] if task.kind == "classification" else []
    table = ["\t".join(["line", "id", "length", "prediction", *extra, "status"]) + "\n"]
    embeddings = []
    for r in rows:
        if r["ids"] is None:
            table.append("\t".join([str(r["line"]), r["id"], "", "", *[""] * len(extra), r["status"]]) + "\n")
            embeddings.append(np.full(task.arch.encoder.d_model, np.nan, dtype=np.float32))
            continue
        value, vector = next(results)
        if task.kind == "regression":
            shown = [f"{float(value):.4f}"]
        else:
            shown = [task.classes[int(value.argmax())], *(f"{float(p):.4f}" for p in value)]
        table.append("\t".join([str(r["line"]), r["id"], str(len(r["ids"])), *shown, r["status"]]) + "\n")
        embeddings.append(vector)
    return write_outputs(a, table, embeddings, report)


def predict_molecules(a, task: RegressionTransformerTask) -> int:
    """A Regression Transformer over a SMILES file, or over its own test molecules (metrics, scatter)."""
    from apps.genomics.molecule import inference

    if a.smiles is None:
        dm = datamodule_from_checkpoint(MoleculeDataModule, a.checkpoint)
        dm.use_tokenizers_json(task.tokenizers_json)
        molecules = dm.splits()["test"]
        predicted, truth = {p: [] for p in task.properties}, {p: [] for p in task.properties}
        for first in range(0, len(molecules), a.batch_size):
            batch = collate_molecules(molecules[first:first + a.batch_size], dm.prefix_length)
            got, want = task.predict_properties(batch), task.read_prefix(batch["ids"])
            for p in task.properties:
                predicted[p].append(got[p])
                truth[p].append(want[p])
        panels = []
        for p in task.properties:
            pred, true = torch.cat(predicted[p]), torch.cat(truth[p])
            scores = {"rmse": float((pred - true).pow(2).mean().sqrt()),
                      "pearson": float(pearson_corrcoef(pred, true)), "spearman": float(spearman_corrcoef(pred, true))}
            print(f"test split ({len(molecules):,} molecules, {p}): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            panels.append((pred.numpy(), true.numpy(), p, scores))
        if a.plot:
            from apps.genomics.plot import property_scatter

            property_scatter(panels, a.plot, "molecules")
            print(f"wrote {a.plot}")
        return 0
    seeds, report = inference.read_molecules(a.smiles, task)
    return write_outputs(a, inference.predict_rows(task, seeds, a.batch_size), [], report)


@torch.inference_mode()
def property_values(task: PropertyTask, sequences: list[np.ndarray], batch_size: int):
    """Predictions (label units, or class probabilities) and pooled vectors, in input order; batches
    are formed by length so that little is padding."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    values: list[torch.Tensor | None] = [None] * len(sequences)
    vectors: list[np.ndarray | None] = [None] * len(sequences)
    model = task.model.eval()
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        width = max(len(sequences[i]) for i in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :len(sequences[i])] = torch.from_numpy(sequences[i])
        mask = ids != 0
        pooled = model.features(ids, mask)
        out = task.outputs(pooled)
        for r, i in enumerate(rows):
            values[i], vectors[i] = out[r], pooled[r].float().numpy()
    stacked = torch.stack(values) if values else torch.zeros(0)
    return stacked, vectors


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by apps.genomics.train")
    p.add_argument("--fasta", help="sequences to predict (gzip too); default: the checkpoint's held-out test data")
    p.add_argument("--smiles", help="Regression Transformer: molecules to predict (CSV with a SMILES column, or .smi)")
    p.add_argument("--output", help="write the table here instead of stdout")
    p.add_argument("--gff", help="tagger: write the predicted genes here (GFF3)")
    p.add_argument("--embeddings", help="write one embedding per FASTA entry here (.npy, float32)")
    p.add_argument("--min-gene", type=int, default=90, help="shortest predicted gene, in bases")
    p.add_argument("--window", type=int, help="DNA: bases per model call (default: the training window)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--plot", help="held-out data only: a genome track (tagger) or predicted-vs-true scatter (regression)")
    p.add_argument("--track-bases", type=int, default=20000, help="length of the stretch a genome track draws")
    a = p.parse_args(argv)
    if a.min_gene < 1 or a.batch_size < 1 or a.track_bases < 100 or (a.window is not None and a.window < 2):
        raise UserError("--min-gene and --batch-size must be at least 1, --window at least 2, --track-bases at least 100")
    if a.fasta is None and a.smiles is None and (a.output or a.gff or a.embeddings):
        raise UserError("--output, --gff and --embeddings describe a --fasta (or --smiles) file; give one")
    if (a.fasta or a.smiles) and a.plot:
        raise UserError("--plot draws the held-out data against its true labels; leave out --fasta and --smiles")
    task = BaseTask.from_checkpoint(a.checkpoint)
    if isinstance(task, RegressionTransformerTask):
        if a.fasta or a.gff or a.embeddings:
            raise UserError(f"{a.checkpoint}: a Regression Transformer reads --smiles files; --fasta, --gff and "
                            "--embeddings need a DNA or sequence-property model")
        return predict_molecules(a, task)
    if a.smiles:
        raise UserError(f"{a.checkpoint}: a {type(task).__name__} checkpoint; --smiles needs a Regression Transformer")
    if isinstance(task, PropertyTask):
        if a.gff:
            raise UserError(f"{a.checkpoint}: a sequence-property model; --gff needs a gene tagger checkpoint")
        return predict_properties(a, task)
    if not isinstance(task, (DNALMTask, GeneTagTask)):
        raise UserError(f"{a.checkpoint}: a {type(task).__name__} checkpoint; apps.genomics.predict reads "
                        "DNA language models, gene taggers and sequence-property models")
    limit = task.arch.decoder.max_len - 1 if isinstance(task, DNALMTask) else task.arch.encoder.max_len
    window = a.window or min(int(datamodule_options(a.checkpoint).get("window", limit)), limit)
    if window > limit:
        raise UserError(f"{a.checkpoint}: the model reads at most {limit} bases per call (--window {window})")
    if a.plot and isinstance(task, DNALMTask):
        raise UserError(f"{a.checkpoint}: a language model; --plot draws a gene tagger's genome track")
    predictor = Predictor(task, window, a.batch_size)
    return predict_fasta(a, predictor) if a.fasta else predict_held_out(a, predictor)


if __name__ == "__main__":
    sys.exit(main())
