"""Recommendation data: the four formats users bring read to the same events, every bad record
counted under its reason with its line and warned about once per file (the files left as they
were), the k-core filter, the chronological leave-one-out split and its examples, and the bundled
MovieLens-100k out of the recbole wheel."""
import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from apps.recommendation.datasets import RECBOLE_WHEEL, bundled_movielens, read_bundled_movielens
from apps.recommendation.interactions import (ML100K_GENRES, Example, Interactions, detect_format, examples,
                                              filter_k_core, leave_one_out, read_amazon, read_interactions,
                                              read_movielens_100k, read_movielens_1m, read_recbole, user_sequences)
from core.data.reports import DataWarning, SkipReport
from core.errors import DataError, UserError

# --------------------------------------------------------------------------- one small log, four formats

#: (user, item, timestamp) in file order; user 1's item 30 is older than its first line's item
EVENTS = [("1", "10", 978300760), ("1", "20", 978302109), ("2", "10", 978301968), ("1", "30", 978300275),
          ("2", "30", 978824291), ("2", "20", 978300760)]
#: item -> (title, genres in MovieLens-100k's flag order, year); the accent tests latin-1
ITEMS = {"10": ("Amélie", ["Comedy", "Romance"], 2001), "20": ("Heat", ["Action", "Crime", "Thriller"], 1995),
         "30": ("Toy Story", ["Animation", "Children's", "Comedy"], 1995)}


def write(path: Path, lines: list[str] | list[bytes], encoding: str = "utf-8") -> Path:
    data = b"".join((line if isinstance(line, bytes) else line.encode(encoding)) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def flags(genres: list[str]) -> str:
    return "|".join("1" if name in genres else "0" for name in ML100K_GENRES)


def movielens_1m(folder: Path) -> tuple[Path, Path]:
    ratings = write(folder / "ratings.dat", [f"{u}::{i}::5::{t}" for u, i, t in EVENTS])
    movies = write(folder / "movies.dat", [f"{i}::{title} ({year})::{'|'.join(genres)}"
                                           for i, (title, genres, year) in ITEMS.items()], "latin-1")
    return ratings, movies


def movielens_100k(folder: Path) -> tuple[Path, Path]:
    data = write(folder / "u.data", [f"{u}\t{i}\t5\t{t}" for u, i, t in EVENTS])
    item = write(folder / "u.item", [f"{i}|{title} ({year})|01-Jan-{year}||http://us.imdb.com/M/x|{flags(genres)}"
                                     for i, (title, genres, year) in ITEMS.items()], "latin-1")
    return data, item


def recbole(folder: Path) -> tuple[Path, Path]:
    """Columns in another order than RecBole writes them, timestamps typed float: read by name."""
    inter = write(folder / "log.inter", ["timestamp:float\trating:float\titem_id:token\tuser_id:token",
                                         *(f"{t}.0\t5\t{i}\t{u}" for u, i, t in EVENTS)])
    item = write(folder / "log.item", ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
                                       *(f"{i}\t{title}\t{year}\t{' '.join(genres)}"
                                         for i, (title, genres, year) in ITEMS.items())])
    return inter, item


def amazon(folder: Path) -> tuple[Path, Path]:
    """Gzipped reviews; metadata as JSON with ``categories`` paths, and as an older dump's Python
    literal with a 2018-style ``category`` list."""
    reviews = write(folder / "reviews_Movies_5.json.gz",
                    [json.dumps({"reviewerID": u, "asin": i, "overall": 5.0, "unixReviewTime": t})
                     for u, i, t in EVENTS])
    (t10, g10, _), (t20, g20, _), (t30, g30, _) = ITEMS.values()
    meta = write(folder / "meta_Movies.json", [json.dumps({"asin": "10", "title": t10, "categories": [g10]}),
                                               repr({"asin": "20", "title": t20, "category": g20}),
                                               json.dumps({"asin": "30", "title": t30,
                                                           "categories": [g30[:2], g30[1:]]})])
    return reviews, meta


FORMATS = {"movielens-1m": movielens_1m, "movielens-100k": movielens_100k, "recbole": recbole, "amazon": amazon}
READERS = {"movielens-1m": read_movielens_1m, "movielens-100k": read_movielens_100k, "recbole": read_recbole,
           "amazon": read_amazon}


def read_unchanged(folder: Path, path: Path, items_path: Path | None = None, reader=read_interactions
                   ) -> Interactions:
    """``reader(path, items_path)``; afterwards every file in ``folder`` has its bytes and no file was added."""
    before = {p: p.read_bytes() for p in folder.iterdir()}
    try:
        return reader(path, items_path)
    finally:
        assert {p: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_events_and_items(tmp_path, fmt):
    path, items_path = FORMATS[fmt](tmp_path)
    assert detect_format(path) == fmt
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file gives no warning
        data = read_unchanged(tmp_path, path, items_path)
    assert data.user_ids.tolist() == [u for u, _, _ in EVENTS]
    assert data.item_ids.tolist() == [i for _, i, _ in EVENTS]
    assert data.timestamps.dtype == np.int64 and data.timestamps.tolist() == [t for _, _, t in EVENTS]
    assert data.lines.tolist() == ([2, 3, 4, 5, 6, 7] if fmt == "recbole" else [1, 2, 3, 4, 5, 6])  # (header)
    assert (len(data), data.n_users, data.n_items) == (6, 2, 3)
    years = {i: (None if fmt == "amazon" else year) for i, (_, _, year) in ITEMS.items()}  # Amazon has no years
    assert data.items == {i: {"title": title, "genres": genres, "year": years[i]}
                          for i, (title, genres, _) in ITEMS.items()}
    assert [report.origin for report in data.reports] == [str(path), str(items_path)]
    assert all(report.n_skipped == 0 for report in data.reports)
    assert [report.total for report in data.reports] == [6, 3]
    again = read_unchanged(tmp_path, path, items_path, READERS[fmt])  # the dispatcher chose this reader
    assert again.item_ids.tolist() == data.item_ids.tolist() and again.items == data.items


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_an_item_file_every_item_is_kept_and_none_is_described(tmp_path, fmt):
    path, _ = FORMATS[fmt](tmp_path)
    data = read_unchanged(tmp_path, path)
    assert data.item_ids.tolist() == [i for _, i, _ in EVENTS] and data.items == {}
    assert len(data.reports) == 1


def test_the_same_events_give_the_same_sequences_in_every_format(tmp_path):
    results = []
    for fmt, build in FORMATS.items():
        (tmp_path / fmt).mkdir()
        sequences = user_sequences(read_interactions(*build(tmp_path / fmt)))
        results.append((sequences.users, [s.tolist() for s in sequences.items], sequences.item_ids))
    # items 10, 20, 30 -> 1, 2, 3; user 1 saw 30 (t=...275), 10 (...760), 20 (...2109); user 2: 20, 10, 30
    assert results[0] == (["1", "2"], [[3, 1, 2], [2, 1, 3]], ["", "10", "20", "30"])
    assert all(result == results[0] for result in results[1:])


def test_reader_names_pick_the_format_and_an_unknown_one_is_an_error_naming_the_file(tmp_path):
    cases = {"ratings.dat": "movielens-1m", "ratings.dat.gz": "movielens-1m", "u.data": "movielens-100k",
             "u1.base": "movielens-100k", "ua.test": "movielens-100k", "ml-1m.inter": "recbole",
             "Books_5.json": "amazon", "reviews_Books_5.json.gz": "amazon", "x.jsonl": "amazon"}
    assert {name: detect_format(tmp_path / name) for name in cases} == cases
    path = write(tmp_path / "ratings.csv", ["1,10,5,100"])
    with pytest.raises(UserError) as info:
        read_interactions(path)
    assert str(path) in str(info.value) and "unknown interaction format" in str(info.value)


def test_u_genre_beside_u_item_names_the_flags(tmp_path):
    write(tmp_path / "u.genre", ["unknown|0", "Noir|1", "Space|2", ""])
    item = write(tmp_path / "u.item", ["1|Alien (1979)|01-Jan-1979||url|0|0|1", "2|Heat (1995)|||url|0|1|1"])
    data_file = write(tmp_path / "u.data", ["5\t1\t4\t100", "5\t2\t4\t90"])
    data = read_unchanged(tmp_path, data_file, item)
    assert data.items == {"1": {"title": "Alien", "genres": ["Space"], "year": 1979},
                          "2": {"title": "Heat", "genres": ["Noir", "Space"], "year": 1995}}  # (year of the title)
    write(tmp_path / "u.genre", ["unknown|0", "Noir", "Space|2"])
    with pytest.raises(DataError, match=r"u\.genre: line 2 is not 'genre\|index'"):
        read_movielens_100k(data_file, item)


# --------------------------------------------------------------------------- bad input


def warned(caught, path: Path) -> str:
    """The one warning naming ``path`` among ``caught``."""
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)
                and str(w.message).startswith(f"{path}:")]
    assert len(messages) == 1, messages
    return messages[0]


def test_bad_events_and_items_are_counted_per_reason_with_their_lines(tmp_path):
    ratings = write(tmp_path / "ratings.dat", [
        b"1::10::5::100",  # 1 kept
        b"1::20::5",  # 2 missing column
        b"1::20::5::soon",  # 3 timestamp not a number
        b"::20::5::300",  # 4 empty field
        b"1::10::5::100",  # 5 duplicate event
        b"1::99::5::400",  # 6 unknown item
        b"",  # 7 blank: not a record
        b"2::20::4::500::x",  # 8 extra column
        b"2::40::4::500",  # 9 kept
        b"\xff::10::4::600",  # 10 invalid UTF-8
        b"2::10::4::1e400",  # 11 timestamp not a number (infinite)
    ])
    movies = write(tmp_path / "movies.dat", [
        "10::Heat (1995)::Action|Crime".encode("latin-1"),  # 1 kept
        b"20::::Drama",  # 2 kept without title and year
        b"30::Nameless::",  # 3 kept without year and genres
        b"just text",  # 4 missing column
        b"10::Other (1999)::Drama",  # 5 duplicate item
        b"::Orphan (1990)::Drama",  # 6 empty field
        "40::Amélie (2001)::Comedy".encode("latin-1"),  # 7 kept
        b"50::A::B::C",  # 8 extra column
    ])
    with pytest.warns(DataWarning) as caught:
        data = read_unchanged(tmp_path, ratings, movies)
    events, items = data.reports
    assert events.skipped == {"missing column": [2], "timestamp not a number": [3, 11], "empty field": [4],
                              "duplicate event": [5], "unknown item": [6], "extra column": [8],
                              "invalid UTF-8": [10]}
    assert events.total == 10 and data.lines.tolist() == [1, 9] and data.item_ids.tolist() == ["10", "40"]
    assert items.skipped == {"missing title/year": [2], "missing year/genres": [3], "missing column": [4],
                             "duplicate item": [5], "empty field": [6], "extra column": [8]}
    assert data.items == {"10": {"title": "Heat", "genres": ["Action", "Crime"], "year": 1995},
                          "20": {"title": "", "genres": ["Drama"], "year": None},
                          "30": {"title": "Nameless", "genres": [], "year": None},
                          "40": {"title": "Amélie", "genres": ["Comedy"], "year": 2001}}
    assert len(caught) == 2
    message = warned(caught, ratings)
    assert "skipped 8 of 10 records" in message and "timestamp not a number: lines 3, 11" in message
    assert "unknown item (not in movies.dat): line 6" in message and "duplicate event" in message
    assert "missing title/year (item kept): line 2" in warned(caught, movies)


def test_bad_amazon_lines_are_counted_and_literals_are_parsed_never_run(tmp_path):
    reviews = write(tmp_path / "Books_5.json", [
        '{"reviewerID": "A", "asin": "X", "unixReviewTime": 1}',  # 1 kept
        "not json",  # 2 invalid JSON
        '{"reviewerID": "A", "asin": "X"}',  # 3 missing key
        '{"reviewerID": "A", "asin": "X", "unixReviewTime": "yesterday"}',  # 4 timestamp not a number
        '{"reviewerID": null, "asin": "X", "unixReviewTime": 2}',  # 5 empty field
        "[1, 2]",  # 6 invalid JSON (not an object)
        '{"reviewerID": "A", "asin": "X", "unixReviewTime": 1}',  # 7 duplicate event
        '{"reviewerID": "B", "asin": "Y", "unixReviewTime": 7.5}',  # 8 kept, 7 s
        '{"reviewerID": "B", "asin": "X", "unixReviewTime": NaN}',  # 9 timestamp not a number
        '{"reviewerID": "B", "asin": "W", "unixReviewTime": 3}',  # 10 unknown item
    ])
    marker = tmp_path / "ran"
    meta = write(tmp_path / "meta_Books.json", [
        '{"asin": "X", "title": "Book", "categories": [["Books", "Fiction"], ["Books", "Kindle"]]}',  # 1
        "{'asin': 'Y', 'title': 'Pen', 'category': ['Office']}",  # 2 an older dump's Python literal
        "{'asin': 'Z'}",  # 3 kept without title and genres
        "{'title': 'no asin'}",  # 4 missing key
        "{'asin': 'V', 'title': ",  # 5 invalid JSON (cut off)
        f"__import__('pathlib').Path({str(marker)!r}).touch()",  # 6 invalid JSON: code is not a literal
    ])
    with pytest.warns(DataWarning) as caught:
        data = read_unchanged(tmp_path, reviews, meta)
    assert not marker.exists()
    events, items = data.reports
    assert events.skipped == {"invalid JSON": [2, 6], "missing key": [3], "timestamp not a number": [4, 9],
                              "empty field": [5], "duplicate event": [7], "unknown item": [10]}
    assert data.user_ids.tolist() == ["A", "B"] and data.timestamps.tolist() == [1, 7]
    assert items.skipped == {"missing title/genres": [3], "missing key": [4], "invalid JSON": [5, 6]}
    assert data.items == {"X": {"title": "Book", "genres": ["Books", "Fiction", "Kindle"], "year": None},
                          "Y": {"title": "Pen", "genres": ["Office"], "year": None},
                          "Z": {"title": "", "genres": [], "year": None}}
    assert "invalid JSON: lines 2, 6" in warned(caught, reviews)
    assert "missing key (expected key \"asin\"): line 4" in warned(caught, meta)


def test_bad_recbole_and_u_item_lines_are_counted(tmp_path):
    inter = write(tmp_path / "x.inter", ["user_id:token\titem_id:token\ttimestamp:float",
                                         "1\t10\t100", "1\t20", "1\t10\tnan", "2\t20\t5\t9", "2\t30\t200"])
    item = write(tmp_path / "x.item", ["item_id:token\ttitle:token_seq\tyear:token\tgenre:token",
                                       "10\tHeat\t1995\tAction", "20\tunkonwn\tunkonwn\t", "30\tUp\t2009\tFamily"])
    with pytest.warns(DataWarning) as caught:
        data = read_unchanged(tmp_path, inter, item)
    assert data.reports[0].skipped == {"missing column": [3], "timestamp not a number": [4], "extra column": [5]}
    assert data.reports[0].total == 5 and data.lines.tolist() == [2, 6]  # the header is not a record
    assert data.reports[1].skipped == {"missing year/genres": [3]}
    assert data.items["20"] == {"title": "unkonwn", "genres": [], "year": None}
    assert data.items["10"]["genres"] == ["Action"]  # a token column is one genre
    assert len(caught) == 2
    no_time = write(tmp_path / "y.inter", ["user_id:token\titem_id:token\trating:float", "1\t10\t5"])
    with pytest.raises(DataError) as info:
        read_unchanged(tmp_path, no_time)
    assert str(info.value) == f"{no_time}: no timestamp column in the header (it has: user_id, item_id, rating)"

    u_item = write(tmp_path / "u.item", [f"1|Heat (1995)|01-Jan-1995||url|{flags(['Action'])}",
                                         "2|Up (2009)|01-Jan-2009||url|" + "|".join(["2"] * 19),  # bad flags
                                         "3|Short|line", f"4|unknown|||url|{flags(['unknown'])}"], "latin-1")
    u_data = write(tmp_path / "u.data", ["7\t1\t3\t10", "7\t2\t3\t11", "7\t4\t3\t12", "7\t3\t3\t13"])
    with pytest.warns(DataWarning) as caught:
        data = read_unchanged(tmp_path, u_data, u_item)
    assert data.reports[1].skipped == {"missing genres": [2], "missing column": [3], "missing year": [4]}
    assert data.reports[0].skipped == {"unknown item": [4]}
    assert data.items["4"] == {"title": "unknown", "genres": ["unknown"], "year": None}
    assert "unknown item (not in u.item): line 4" in warned(caught, u_data)


@pytest.mark.parametrize("lines", [["garbage", "1::2"], ["", "   "]])
def test_an_events_file_with_nothing_usable_is_an_error_naming_it(tmp_path, lines):
    path = write(tmp_path / "ratings.dat", lines)
    with pytest.raises(DataError) as info:
        read_unchanged(tmp_path, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_items_all_unknown_or_an_unusable_item_file_are_errors_naming_the_file(tmp_path):
    ratings, _ = movielens_1m(tmp_path)
    other = write(tmp_path / "other.dat", ["77::Elsewhere (2000)::Drama"])
    with pytest.raises(DataError) as info:
        read_unchanged(tmp_path, ratings, other)
    assert str(info.value) == (f"{ratings}: no usable records (skipped 6 of 6 records (unknown item (not in "
                               f"other.dat): lines 1, 2, 3, 4, 5 (+1 more)))")
    broken = write(tmp_path / "broken.dat", ["no separators here"])
    with pytest.raises(DataError) as info:
        read_unchanged(tmp_path, ratings, broken)
    assert str(info.value) == f"{broken}: no usable records (skipped 1 of 1 records (missing column: line 1))"


# --------------------------------------------------------------------------- filter and split


def log(rows: list[tuple[str, str, int]]) -> Interactions:
    """Interactions of ``rows`` (user, item, timestamp) as if read from lines 1, 2, ..."""
    users, items, times = zip(*rows)
    return Interactions(source="log.inter", user_ids=np.array(users), item_ids=np.array(items),
                        timestamps=np.array(times, dtype=np.int64), lines=np.arange(1, len(rows) + 1), items={},
                        reports=(SkipReport("log.inter"),))


#: user 7: six events, two at t=30 (file order decides); user 10: five; user 3: four (dropped at 5)
SPLIT_LOG = [("7", "30", 50), ("10", "4", 5), ("7", "4", 10), ("3", "4", 1), ("7", "12", 30), ("10", "9", 6),
             ("7", "2", 30), ("3", "9", 2), ("10", "2", 7), ("7", "9", 70), ("3", "2", 3), ("10", "12", 8),
             ("7", "100", 60), ("3", "12", 4), ("10", "30", 9)]


def test_user_filter_drops_users_with_fewer_than_five_events_keeping_file_order():
    kept = filter_k_core(log(SPLIT_LOG))
    assert kept.lines.tolist() == [1, 2, 3, 5, 6, 7, 9, 10, 12, 13, 15]  # user 3's lines 4, 8, 11, 14 are gone
    assert filter_k_core(log(SPLIT_LOG), min_user_events=4).lines.tolist() == list(range(1, 16))
    with pytest.raises(DataError, match=r"^log\.inter: no events left after keeping users with at least 7 events"):
        filter_k_core(log(SPLIT_LOG), min_user_events=7)


def test_k_core_iterates_until_every_user_and_item_meets_its_minimum():
    rows = [("u1", "i1", 1), ("u1", "i2", 2), ("u2", "i1", 3), ("u2", "i2", 4), ("u3", "i2", 5), ("u3", "i3", 6),
            ("u4", "i3", 7)]
    # one pass: items all have 2+ events, u4 (1 event) goes; that leaves i3 with one event, so i3 goes, which
    # leaves u3 with one; after that u1, u2 and i1, i2 all have two: stable
    kept = filter_k_core(log(rows), min_user_events=2, min_item_events=2)
    assert kept.lines.tolist() == [1, 2, 3, 4]
    assert filter_k_core(log(rows), min_user_events=2).lines.tolist() == [1, 2, 3, 4, 5, 6]  # users only: u4 goes


def test_sequences_are_chronological_with_ties_in_file_order_and_items_numbered_1_to_n():
    sequences = user_sequences(filter_k_core(log(SPLIT_LOG)))
    # the kept items in id order 2, 4, 9, 12, 30, 100 become 1..6 (0 is padding)
    assert sequences.item_ids == ["", "2", "4", "9", "12", "30", "100"] and sequences.n_items == 6
    assert sequences.item_index == {"2": 1, "4": 2, "9": 3, "12": 4, "30": 5, "100": 6}
    assert sequences.users == ["7", "10"]
    # user 7 by time: 4 (t10), 12 (t30, line 5), 2 (t30, line 7), 30 (t50), 100 (t60), 9 (t70)
    # user 10: 4, 9, 2, 12, 30
    assert [s.tolist() for s in sequences.items] == [[2, 4, 1, 5, 6, 3], [2, 3, 1, 4, 5]]


def test_leave_one_out_and_its_examples_on_a_hand_made_log():
    split = leave_one_out(user_sequences(filter_k_core(log(SPLIT_LOG))))
    assert [t.tolist() for t in split.train] == [[2, 4, 1, 5], [2, 3, 1]]
    assert split.valid.tolist() == [6, 4] and split.test.tolist() == [3, 5]
    assert examples(split, "train", max_history=2) == [
        Example("7", (2,), 4), Example("7", (2, 4), 1), Example("7", (4, 1), 5),
        Example("10", (2,), 3), Example("10", (2, 3), 1)]
    assert examples(split, "valid", max_history=2) == [Example("7", (1, 5), 6), Example("10", (3, 1), 4)]
    assert examples(split, "test", max_history=2) == [Example("7", (5, 6), 3), Example("10", (1, 4), 5)]
    assert examples(split, "test") == [Example("7", (2, 4, 1, 5, 6), 3), Example("10", (2, 3, 1, 4), 5)]
    with pytest.raises(UserError, match="max_history must be at least 1"):
        examples(split, "test", max_history=0)
    with pytest.raises(UserError, match="split must be one of train, valid, test"):
        examples(split, "dev")


def test_leave_one_out_refuses_users_too_short_to_split():
    sequences = user_sequences(filter_k_core(log(SPLIT_LOG[:9]), min_user_events=2))
    with pytest.raises(UserError, match=r"log\.inter: 1 users have fewer than 3 events \(first '3'\)"):
        leave_one_out(sequences)


# --------------------------------------------------------------------------- bundled MovieLens-100k


@pytest.fixture(scope="module")
def movielens() -> Interactions:
    with pytest.warns(DataWarning) as caught:
        data = read_bundled_movielens()
    # RecBole's ml-100k.item gives no year for two items: 267 ("unkonwn", RecBole's spelling of MovieLens'
    # unnamed movie) and 1412, whose year field holds "V" (from the title's "(V)" video tag)
    expected = f"{bundled_movielens().item}: skipped 2 of 1682 records (missing year (item kept): lines 268, 1413)"
    assert [str(w.message) for w in caught] == [expected]
    return data


def test_bundled_movielens_is_the_real_ml_100k(movielens):
    files = bundled_movielens()
    assert RECBOLE_WHEEL == "recbole==1.2.1" and files.inter.name == "ml-100k.inter"
    assert files.user.is_file() and files.user.read_text().startswith("user_id:token\tage:token")
    # the .inter file is a header and 100,000 lines, and every line is a usable, distinct event: MovieLens-100k
    # is 100,000 ratings by 943 users of 1,682 movies, each user with at least 20
    assert len(files.inter.read_bytes().splitlines()) == 1 + 100_000
    assert movielens.reports[0].skipped == {} and movielens.reports[0].total == 100_000
    assert (len(movielens), movielens.n_users, movielens.n_items, len(movielens.items)) == (100_000, 943, 1682, 1682)
    _, per_user = np.unique(movielens.user_ids, return_counts=True)
    assert per_user.min() == 20 and per_user.max() == 737
    assert movielens.items["1"] == {"title": "Toy Story", "genres": ["Animation", "Children's", "Comedy"],
                                    "year": 1995}
    assert movielens.timestamps.min() == 874724710 and movielens.timestamps.max() == 893286638  # 1997-09 to 1998-04


def test_bundled_split_never_shows_a_held_out_item(movielens):
    kept = filter_k_core(movielens)
    assert len(kept) == 100_000  # every user has 20+ ratings: the default 5 drops nobody
    sequences = user_sequences(kept)
    split = leave_one_out(sequences)
    train, valid, test = (examples(split, which) for which in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (100_000 - 3 * 943, 943, 943)
    assert max(len(e.history) for e in train + valid + test) == 20 and min(len(e.history) for e in valid) == 18
    seen: dict[str, set[int]] = {}  # per user: every item in a training history or target
    for e in train:
        seen.setdefault(e.user, set()).update((*e.history, e.target))
    for v, t in zip(valid, test):
        assert v.user == t.user
        assert t.target not in seen[t.user] and t.target not in v.history and t.target != v.target
        assert v.target not in seen[v.user] and v.target not in v.history
        assert t.history[-1] == v.target and t.history[:-1] == v.history[-19:]
    # sequences are chronological: each (user, item) is rated once in ml-100k, so its time is known
    when = {(u, i): s for u, i, s in zip(kept.user_ids.tolist(), kept.item_ids.tolist(), kept.timestamps.tolist())}
    for user, items in zip(sequences.users, sequences.items):
        times = [when[user, sequences.item_ids[i]] for i in items.tolist()]
        assert times == sorted(times)
