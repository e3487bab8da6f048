"""Bundled corpora: OSIS cleaning (always), and the Bible build from real SWORD modules (when installed)."""

from __future__ import annotations

import json

import pytest

from apps.translation import corpora
from apps.translation.data import TranslationDataModule

SWORD_INSTALLED = bool(
    corpora.installed_module(corpora.SPANISH_MODULES) and corpora.installed_module(corpora.ENGLISH_MODULES)
)
needs_sword = pytest.mark.skipif(not SWORD_INSTALLED, reason=f"SWORD Bible modules not installed: {corpora.APT_HINT}")

# Verse entries as the Debian modules store them (trimmed), with the artifacts the cleaner handles.
WEB_JOHN_3_16 = (
    '<q marker="" who="Jesus"><w lemma="strong:G1063">For</w> <w lemma="strong:G2316">God</w> '
    '<w lemma="strong:G0025">loved</w> <w lemma="strong:G3439">only</w> born</q><note placement="foot">'
    '<reference type="annotateRef">3:16 </reference>The phrase “only born” is from the Greek word “μονογενη”.</note>'
    '<q marker="" who="Jesus"><w lemma="strong:G5207">Son</w>, <w lemma="strong:G2222">life</w>. </q>'
)
WEB_GEN_1_1 = (
    '<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>'
    'The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">created</w> '
    '<w lemma="strong:H0776">earth</w>. '
)
WEB_PSALM_3_1 = (
    '<div type="x-milestone" subType="x-preverse" sID="pv4877"/><title canonical="true" type="psalm">'
    'A Psalm by David.</title> <lg sID="gen7860"/> <l level="1" sID="gen7861"/>Yahweh, how '
    '<w lemma="strong:H1732">my</w> adversaries have increased!<l eID="gen7861" level="1"/> '
    '<l level="2" sID="gen7862"/>Many rise up against me. <l eID="gen7862" level="2"/>'
)
WEB_REV_22_21 = (
    'Amen.  <chapter eID="Rev.22"/><div eID="gen35836" type="x-p"/> '
    '<div canonical="true" eID="gen35575" osisID="Rev" type="book"/> <div sID="gen35837" type="glossary"/> '
    '<title level="1" type="main">World English Bible Glossary</title> Abba: Father &amp; more'
)
RV_ROM_1_1 = (
    '<w lemma="strong:G3972">PABLO</w>, <w lemma="strong:G2822">llamado</w><transChange type="added">á ser'
    '</transChange><w lemma="strong:G0652">apóstol</w>, <w lemma="strong:H3318">sáca</w><transChange '
    'type="added">lo</transChange> <w lemma="strong:G2316">de Dios</w>,'
)


def test_clean_osis_removes_notes_without_gluing_words():
    assert corpora.clean_osis(WEB_JOHN_3_16) == "For God loved only born Son, life."
    assert corpora.clean_osis(WEB_GEN_1_1) == "God created earth."


def test_clean_osis_keeps_canonical_titles_and_drops_back_matter():
    assert corpora.clean_osis(WEB_PSALM_3_1) == (
        "A Psalm by David. Yahweh, how my adversaries have increased! Many rise up against me."
    )
    assert corpora.clean_osis(WEB_REV_22_21) == "Amen."
    assert corpora.clean_osis('Fish &amp; chips<lb type="x-p"/>today') == "Fish & chips today"
    kjv = (
        '<milestone type="x-p" marker="¶"/>¶ <w lemma="strong:G1063">For</w> <transChange type="added">is</transChange>'
    )
    assert corpora.clean_osis(kjv) == "For is"


def test_clean_spanish_fixes_added_words_drop_caps_and_colophons():
    verse_1 = corpora.clean_spanish(corpora.clean_osis(RV_ROM_1_1), verse=1)
    assert verse_1 == "Pablo, llamado á ser apóstol, sácalo de Dios,"
    assert (
        corpora.clean_spanish("Salmo de David. JEHOVÁ es mi pastor.", verse=1) == "Salmo de David. Jehová es mi pastor."
    )
    # only chapter starts are drop-caps; capitals elsewhere are the translators' emphasis
    assert corpora.clean_spanish("Yo soy JEHOVÁ tu Dios.", verse=2) == "Yo soy JEHOVÁ tu Dios."
    assert (
        corpora.clean_spanish(
            "La gracia sea contigo. Amén. La primera epístola á Timoteo fué escrita de Laodicea.", verse=21
        )
        == "La gracia sea contigo. Amén."
    )


def test_split_of_is_stable_and_proportional():
    assert corpora.split_of("John.3.16", corpora.BIBLE_SPLIT) == corpora.split_of("John.3.16", (98, 1, 1))
    names = [corpora.split_of(f"key{i}", (80, 10, 10)) for i in range(5000)]
    assert 0.77 < names.count("train") / 5000 < 0.83 and names.count("valid") > 400 and names.count("test") > 400
    with pytest.raises(ValueError, match="summing to 100"):
        corpora.split_of("x", (90, 5, 4))


def test_missing_modules_name_the_apt_packages(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="apt-get install sword-text-sparv sword-text-web"):
        corpora.find_modules(tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install sword-text-sparv sword-text-web"):
        corpora.build_bible_corpus(tmp_path / "out", sword_path=tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        corpora.main(["bible", "--out", str(tmp_path / "out"), "--sword-path", str(tmp_path)])
    assert exit_info.value.code == 2 and "sword-text-sparv" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bible_cache(tmp_path_factory):
    if not SWORD_INSTALLED:
        pytest.skip(f"SWORD Bible modules not installed: {corpora.APT_HINT}")
    cache = tmp_path_factory.mktemp("seqlab-cache")
    build = corpora.build_bible_corpus(corpora.bible_corpus_path(cache).parent)
    return cache, build


@needs_sword
def test_bible_build_from_real_modules(bible_cache):
    _, build = bible_cache
    assert build.spanish == "spaRV1909eb" and build.english in corpora.ENGLISH_MODULES
    rows = [json.loads(line) for line in build.path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == build.written > 30_000
    by_ref = {row["ref"]: row for row in rows}
    assert len(by_ref) == len(rows) and rows[0]["ref"] == "Gen.1.1"
    assert by_ref["Gen.1.1"]["es"] == "En el principio crió Dios los cielos y la tierra."
    assert by_ref["John.3.16"]["es"].startswith("Porque de tal manera amó Dios al mundo")
    if build.english == "engWEB2015eb":
        assert "only born Son" in by_ref["John.3.16"]["en"]
        assert by_ref["Gen.1.1"]["en"] == "In the beginning, God created the heavens and the earth."
    for row in rows:
        for text in (row["es"], row["en"]):
            assert text and text == text.strip() and "  " not in text
            assert not any(c in text for c in "<>\x00") and "&amp;" not in text
    assert build.counts["empty side"] > 0 and build.counts["only in one text"] > 0


@needs_sword
def test_bible_cli_prints_counts(tmp_path, capsys):
    corpora.main(["bible", "--out", str(tmp_path), "--books", "Jude", "Phlm"])
    out = capsys.readouterr().out
    rows = (tmp_path / corpora.BIBLE_FILE).read_text(encoding="utf-8").splitlines()
    assert f"wrote {len(rows)} verse pairs" in out and "spaRV1909eb" in out
    assert {json.loads(r)["ref"].split(".")[0] for r in rows} == {"Jude", "Phlm"}
    assert 45 <= len(rows) <= 50  # Jude 25 + Philemon 25 verses, minus any dropped


@needs_sword
def test_bible_data_module(bible_cache):
    cache, build = bible_cache
    dm = TranslationDataModule(
        corpus="bible_es_en",
        src_tokenizer="bpe",
        tgt_tokenizer="bpe",
        shared_vocab=True,
        vocab_size=600,
        max_tokens=2048,
        max_len=200,
        train_limit=500,
        cache_dir=str(cache),
    )
    tok = dm.src_tokenizer_obj
    assert dm.tgt_tokenizer_obj == tok and 300 < dm.src_vocab_size <= 600
    dm.setup("fit")
    valid_records, _ = dm._read("valid")
    assert 150 < len(valid_records) < 500  # about 1% of the verses
    assert all(corpora.split_of(r.key, corpora.BIBLE_SPLIT) == "valid" for r in valid_records)
    assert len(dm._encode("valid").examples) == len(valid_records)  # no verse is over max_len tokens
    batch = next(dm.iter_batches("valid"))
    text = batch["src_text"][0]
    assert tok.decode(batch["src_ids"][0].tolist()) == text  # byte-level BPE: accents and punctuation survive
    assert tok.decode(batch["tgt_ids"][0].tolist()) == batch["refs"][0][0]

    reverse = TranslationDataModule(corpus="bible_es_en", src_lang="en", tgt_lang="es", cache_dir=str(cache))
    first = reverse._read("test")[0][0]
    row = next(r for r in map(json.loads, build.path.read_text(encoding="utf-8").splitlines()) if r["ref"] == first.key)
    assert (first.src, first.refs) == (row["en"], (row["es"],))
