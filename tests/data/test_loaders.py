"""Loaders for every supported format, on tiny fixtures and (where present) the real files."""

import gzip
import shutil

import numpy as np
import pytest

from llmrec.data import DataConfig, leave_one_out, load_dataset
from llmrec.errors import DataError, UnknownNameError

SEQS = {1: [1, 3, 8, 2, 4, 5], 2: [4, 6, 10, 2, 7], 3: [5, 7, 1, 9, 3, 8, 6], 4: [2, 8, 3, 1],
        5: [6, 4, 10, 5, 2], 6: [3, 1, 9, 8, 7, 10, 4]}


def test_movielens_format(fixtures):
    ds = load_dataset("ml-100k", fixtures)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6, 10, 34)
    assert ds.items.title(2) == "Café Society (1995)"  # latin-1 decoded
    assert ds.items.frame.at[1, "genres"] == "Action, Crime, Thriller"
    assert ds.items.frame.at[1, "year"] == "1995"
    assert list(ds.users.columns) == ["age", "gender", "occupation", "zip"]
    split = leave_one_out(ds)
    for u, seq in SEQS.items():
        assert split.sequence(ds.internal_user(u)).tolist() == seq  # ties keep the file order


def test_equal_timestamps_keep_source_order_when_rows_are_shuffled(tmp_path, fixtures):
    root = tmp_path / "data"
    shutil.copytree(fixtures / "ml-100k", root / "ml-100k")
    lines = (root / "ml-100k" / "u.data").read_text().splitlines()
    rng = np.random.default_rng(0)
    # shuffle the rows but keep the relative order of rows with equal (user, timestamp)
    rows = [line.split("\t") for line in lines]
    groups = {}
    for r in rows:
        groups.setdefault((r[0], r[3]), []).append(r)
    order = list(groups)
    rng.shuffle(order)
    (root / "ml-100k" / "u.data").write_text("\n".join("\t".join(r) for k in order for r in groups[k]) + "\n")
    ds = load_dataset("ml-100k", root)
    split = leave_one_out(ds)
    for u, seq in SEQS.items():
        assert split.sequence(ds.internal_user(u)).tolist() == seq


@pytest.mark.parametrize("name", ["sequences.txt", "sequences.txt.gz", "pairs.txt"])
def test_sequence_files(fixtures, name):
    ds = load_dataset(fixtures / name)
    split = leave_one_out(ds)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6, 10, 34)
    for u, seq in SEQS.items():
        raw = ds.item_index[split.sequence(ds.internal_user(u)) - 1].astype(int).tolist()
        assert raw == seq


def test_csv_folder(fixtures):
    ds = load_dataset(fixtures / "csv_folder")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6, 10, 34)
    assert ds.items.text_fields == ["title", "genres"]
    assert ds.items.title(ds.item_index.get_loc("m1") + 1) == "Heat (1995)"
    assert ds.users is not None and "gender" in ds.users.columns
    assert ds.interactions["rating"].notna().all()


def test_s3rec_format(fixtures):
    ds = load_dataset("beauty", fixtures)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6, 10, 34)
    assert ds.items.text_fields == ["asin", "attributes"]
    assert not ds.items.has_titles


def test_nir_format_maps_titles_back(fixtures):
    ds = load_dataset("nir-ml-100k", fixtures)
    # "Heat (1995)" appears twice in the fixture's u.item, so it cannot be mapped back unambiguously
    assert ds.meta["titles_not_mapped"] == 1
    assert ds.meta["titles_mapped_to_ml100k"] == ds.n_items - 1
    frame = ds.items.frame.set_index("title")
    assert frame.at["The Usual Suspects", "ml100k_id"] == "3"
    assert frame.at["Heat", "ml100k_id"] == ""


def test_ambiguous_sequence_file(fixtures):
    with pytest.raises(DataError, match="ambiguous"):
        load_dataset(fixtures / "ambiguous.txt")


def test_filters(fixtures):
    ds = load_dataset("ml-100k", fixtures, DataConfig(min_rating=4))
    assert (ds.interactions["rating"] >= 4).all()
    ds = load_dataset("ml-100k", fixtures, DataConfig(k_core=3))
    assert ds.interactions.groupby("user").size().min() >= 3
    assert ds.interactions.groupby("item").size().min() >= 3
    with pytest.raises(DataError, match="no interactions left after filtering"):
        load_dataset("ml-100k", fixtures, DataConfig(k_core=50))


def test_ids_are_contiguous_with_zero_for_padding(fixtures):
    ds = load_dataset(fixtures / "csv_folder")
    assert ds.interactions["user"].min() == 1 and ds.interactions["user"].max() == ds.n_users
    assert set(ds.interactions["item"]) == set(range(1, ds.n_items + 1))


def test_bad_inputs_name_file_and_line(tmp_path, fixtures):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "interactions.csv").write_text("user_id,item_id,timestamp\n1,2,5\n1,3,yesterday\n")
    with pytest.raises(DataError, match=r"interactions.csv: line 3: field 'timestamp'"):
        load_dataset(bad)
    (bad / "interactions.csv").write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match="missing column 'user_id'"):
        load_dataset(bad)
    (bad / "interactions.csv").write_text("user_id,item_id\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match="malformed CSV.*line 3"):
        load_dataset(bad)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("1 caf\xe9 2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 1: not valid UTF-8 \(byte 0xe9"):
        load_dataset(latin)
    one = tmp_path / "one.txt"
    one.write_text("1 2 3\n4\n")
    with pytest.raises(DataError, match="line 2: expected a user id followed by at least one item"):
        load_dataset(one)
    ml = tmp_path / "root" / "ml-100k"
    shutil.copytree(fixtures / "ml-100k", ml)
    (ml / "u.data").write_text("1\t2\t3\t4\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"u.data: line 2: expected 4 tab-separated fields"):
        load_dataset("ml-100k", tmp_path / "root")
    with pytest.raises(DataError, match="not found"):
        load_dataset("ml-100k", tmp_path / "nowhere")
    with pytest.raises(UnknownNameError, match="known: beauty, ml-100k, nir-ml-100k, sports, toys"):
        load_dataset("netflix")
    gz = tmp_path / "broken.txt.gz"
    gz.write_bytes(gzip.compress(b"1 2 3\n")[:-6])
    with pytest.raises(DataError, match="broken.txt.gz"):
        load_dataset(gz)


@pytest.mark.parametrize(
    "name,counts",
    [("ml-100k", (943, 1682, 100000)), ("beauty", (22363, 12101, 198502)), ("sports", (35598, 18357, 296337)),
     ("toys", (19412, 11924, 167597))],
)
def test_published_statistics(shared_data, name, counts):
    ds = load_dataset(name, shared_data)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == counts


def test_real_nir_titles(shared_data):
    ds = load_dataset("nir-ml-100k", shared_data)
    assert ds.n_users == 943
    assert ds.meta["titles_mapped_to_ml100k"] + ds.meta["titles_not_mapped"] == ds.n_items
