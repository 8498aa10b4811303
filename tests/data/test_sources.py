"""Data folder resolution and the download code, tested on local file:// URLs (never the network)."""

import hashlib
import zipfile

import pytest

from llmrec.data import datasets, load_dataset
from llmrec.data.sources import RemoteFile, data_roots, download, extract_zip
from llmrec.errors import DataError


def _zip_of(folder, dest):
    with zipfile.ZipFile(dest, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"ml-100k/{f.name}")
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def test_download_checks_sha256(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    good = RemoteFile(src.as_uri(), hashlib.sha256(b"hello").hexdigest())
    out = download(good, tmp_path / "dl" / "file.bin", quiet=True)
    assert out.read_bytes() == b"hello"
    bad = RemoteFile(src.as_uri(), "0" * 64)
    with pytest.raises(DataError, match="does not match the expected"):
        download(bad, tmp_path / "dl" / "other.bin", quiet=True)
    assert not (tmp_path / "dl" / "other.bin").exists()
    assert not list((tmp_path / "dl").glob("*.part"))  # no partial file left behind
    with pytest.raises(DataError, match="could not download"):
        download(RemoteFile((tmp_path / "missing").as_uri(), "0" * 64), tmp_path / "x", quiet=True)


def test_extract_zip_refuses_paths_outside(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(DataError, match="outside the target"):
        extract_zip(evil, tmp_path / "into")


def test_ml100k_is_fetched_into_the_cache_when_nowhere_else(tmp_path, tmp_cache, fixtures, monkeypatch):
    """The real fetch code path: URL → sha256 check → extraction → member checksums → loader."""
    from llmrec.data import movielens

    archive = tmp_path / "ml-100k.zip"
    sha = _zip_of(fixtures / "ml-100k", archive)
    monkeypatch.setattr(movielens, "ML100K_ZIP", RemoteFile(archive.as_uri(), sha))
    members = {n: hashlib.sha256((fixtures / "ml-100k" / n).read_bytes()).hexdigest() for n in ("u.data", "u.item")}
    monkeypatch.setattr(movielens, "ML100K_MEMBERS", members)
    monkeypatch.delenv("LLMREC_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "data_roots", lambda d=None: [(tmp_cache / "data", "the user cache")])
    ds = load_dataset("ml-100k")
    assert ds.n_users == 6
    assert (tmp_cache / "data" / "ml-100k" / "u.data").is_file()
    # a tampered archive is refused
    monkeypatch.setattr(movielens, "ML100K_ZIP", RemoteFile(archive.as_uri(), "f" * 64))
    (tmp_cache / "downloads" / "ml-100k.zip").unlink()
    import shutil

    shutil.rmtree(tmp_cache / "data")
    with pytest.raises(DataError, match="sha256"):
        load_dataset("ml-100k")


def test_data_root_priority(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMREC_DATA_DIR", str(tmp_path / "env"))
    roots = data_roots()
    assert roots[0] == (tmp_path / "env", "$LLMREC_DATA_DIR")
    assert roots[-1][1] == "the user cache"
    assert data_roots(tmp_path / "explicit") == [(tmp_path / "explicit", "--data-dir")]


def test_published_checksums_match_the_shared_files(shared_data):
    """The checksums in the download code are the ones of the files the project is tested on."""
    from llmrec.data import amazon, nir
    from llmrec.data.movielens import ML100K_MEMBERS
    from llmrec.io import sha256_file

    for name, sha in ML100K_MEMBERS.items():
        assert sha256_file(shared_data / "ml-100k" / name) == sha
    for files in amazon.S3REC_FILES.values():
        for name, sha in files.items():
            assert sha256_file(shared_data / "amazon-s3rec" / name) == sha
    for name, remote in nir.NIR_FILES.items():
        assert sha256_file(shared_data / "nir-ml-100k" / name) == remote.sha256
