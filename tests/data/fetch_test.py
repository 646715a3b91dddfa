"""Tests for sslmetric.data.fetch (and the optional TFDS source's message).

Routes are exercised for real on tmp dirs: the cache, GroupLens archives served by a
local HTTP server, a locally built recbole wheel, and once the real PyPI wheel (when PyPI
is reachable; then a failure fails the test rather than skipping it).
"""

import contextlib
import functools
import hashlib
import http.server
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile

import pytest

from sslmetric.data import fetch, movielens, tables
from sslmetric.data.types import DataError

RECBOLE_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


@pytest.fixture
def real(shared_data_dir) -> pathlib.Path:
  return shared_data_dir / "ml-100k"


def make_zip(path: pathlib.Path, members: dict) -> pathlib.Path:
  with zipfile.ZipFile(path, "w") as zf:
    for name, data in members.items():
      zf.writestr(name, data)
  return path


def fake_wheel(tmp: pathlib.Path, real_dir: pathlib.Path, *, corrupt=False,
               drop=None) -> pathlib.Path:
  members = {}
  for name in RECBOLE_FILES:
    if name == drop:
      continue
    data = (real_dir / name).read_bytes()
    if corrupt and name.endswith(".item"):
      data = data.replace(b"Toy Story", b"Toy Storm")
    members[fetch.RECBOLE_MEMBER + name] = data
  members["recbole/__init__.py"] = b""
  return make_zip(tmp / "recbole-1.2.1-py3-none-any.whl", members)


@contextlib.contextmanager
def serve(directory: pathlib.Path):
  """An HTTP server on localhost serving `directory`; yields its base URL."""
  class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      pass
  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()
  return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------- constants

def test_constants_are_derived_from_the_real_files(real):
  for name in RECBOLE_FILES:
    assert hashlib.sha256((real / name).read_bytes()).hexdigest() == \
        fetch.RECBOLE_SHA256[name]
  rows = sorted(tuple(int(x) for x in ln.split("\t"))
                for ln in (real / "ml-100k.inter").read_text().splitlines()[1:])
  text = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
  assert hashlib.sha256(text.encode()).hexdigest() == fetch.ML100K_RATINGS_DIGEST
  table = movielens.read_recbole_inter(real / "ml-100k.inter")
  assert tables.ratings_digest(table) == fetch.ML100K_RATINGS_DIGEST


# ----------------------------------------------------------------------------- cache

def test_cache_route_recbole_layout_via_env(real, tmp_path, monkeypatch):
  for name in RECBOLE_FILES[:2]:  # .user is optional
    (tmp_path / "ml-100k").mkdir(exist_ok=True)
    shutil.copy(real / name, tmp_path / "ml-100k" / name)
  monkeypatch.setenv("SSLMETRIC_DATA_DIR", str(tmp_path))
  assert fetch.data_home() == tmp_path
  got = fetch.fetch_ml100k(routes=("cache",))
  assert got == fetch.Fetched(tmp_path / "ml-100k", "recbole", "cache")


def test_cache_route_grouplens_layout(write_ml100k_grouplens, tmp_path):
  write_ml100k_grouplens(tmp_path / "ml-100k")
  got = fetch.fetch_ml100k(tmp_path, routes=("cache",))
  assert got == fetch.Fetched(tmp_path / "ml-100k", "grouplens-100k", "cache")


def test_cache_checksum_mismatch_is_an_error_and_files_are_kept(real, tmp_path):
  d = tmp_path / "ml-100k"
  d.mkdir()
  for name in RECBOLE_FILES:
    shutil.copy(real / name, d / name)
  bad = (d / "ml-100k.item").read_bytes().replace(b"Toy Story", b"Toy Storm")
  (d / "ml-100k.item").write_bytes(bad)
  with pytest.raises(fetch.FetchError, match=r"(?s)1\. cache: .*ml-100k\.item: sha256 "
                     r".*!= expected 51d7cdf7.*left as they are"):
    fetch.fetch_ml100k(tmp_path)  # the download routes are not tried
  assert (d / "ml-100k.item").read_bytes() == bad


def test_cache_grouplens_digest_mismatch(write_ml100k_grouplens, tmp_path):
  d = write_ml100k_grouplens(tmp_path / "ml-100k")
  lines = (d / "u.data").read_text().splitlines()
  u, i, r, t = lines[0].split("\t")
  lines[0] = "\t".join([u, i, str(int(r) % 5 + 1), t])  # one rating changed
  (d / "u.data").write_text("\n".join(lines) + "\n")
  with pytest.raises(fetch.FetchError, match=r"u\.data: ratings digest .* != expected "
                     r"6cfffb52.*not the ML-100K ratings"):
    fetch.fetch_ml100k(tmp_path, routes=("cache",))


# ----------------------------------------------------------------------------- downloads

def test_grouplens_route_from_a_served_archive(write_ml100k_grouplens, tmp_path):
  gl = write_ml100k_grouplens(tmp_path / "gl")
  site = tmp_path / "site"
  site.mkdir()
  make_zip(site / "ml-100k.zip", {f"ml-100k/{n}": (gl / n).read_bytes()
                                  for n in ("u.data", "u.item", "u.genre")})
  home = tmp_path / "home"
  with serve(site) as url:
    got = fetch.fetch_ml100k(home, base_url=url, routes=("cache", "grouplens"))
  assert got == fetch.Fetched(home / "ml-100k", "grouplens-100k", "grouplens")
  ds = movielens.load_movielens(got.directory, layout=got.layout)
  assert len(ds.interactions) == 100_000
  # Now the cache answers.
  assert fetch.fetch_ml100k(home, routes=("cache",)).route == "cache"


def test_tampered_archive_falls_through_to_the_wheel(real, write_ml100k_grouplens,
                                                    tmp_path):
  gl = write_ml100k_grouplens(tmp_path / "gl")
  site = tmp_path / "site"
  site.mkdir()
  data = (gl / "u.data").read_text().splitlines()[1:]  # one rating missing
  make_zip(site / "ml-100k.zip", {"ml-100k/u.data": "\n".join(data) + "\n",
                                  "ml-100k/u.item": (gl / "u.item").read_bytes()})
  home = tmp_path / "home"
  wheel = fake_wheel(tmp_path, real)
  with serve(site) as url:
    got = fetch.fetch_ml100k(home, base_url=url, recbole_wheel=wheel)
  assert got == fetch.Fetched(home / "ml-100k", "recbole", "recbole")
  assert not (home / "ml-100k" / "u.data").exists()  # the bad archive left nothing
  for name in RECBOLE_FILES:
    assert fetch.sha256_file(home / "ml-100k" / name) == fetch.RECBOLE_SHA256[name]


def test_no_route_lists_every_route_and_the_manual_steps(real, tmp_path):
  wheel = fake_wheel(tmp_path, real, corrupt=True)
  with pytest.raises(fetch.FetchError) as e:
    fetch.fetch_ml100k(tmp_path / "home", base_url=closed_port_url(), timeout=2,
                       recbole_wheel=wheel)
  msg = str(e.value)
  assert "1. cache: no ML-100K files in" in msg
  assert "2. grouplens (http://127.0.0.1:" in msg and "URLError" in msg
  assert "3. recbole (PyPI wheel recbole==1.2.1): FetchError: " in msg
  assert "ml-100k.item: sha256" in msg
  assert "To supply them by hand" in msg and "u.data + u.item" in msg
  assert "ml-100k.inter + ml-100k.item" in msg and str(tmp_path / "home" / "ml-100k") in msg
  wheel = fake_wheel(tmp_path, real, drop="ml-100k.user")
  with pytest.raises(fetch.FetchError, match=r"has no recbole/dataset_example/ml-100k/"
                     r"ml-100k\.user"):
    fetch.fetch_ml100k(tmp_path / "home", routes=("recbole",), recbole_wheel=wheel)


def test_real_grouplens_route_works_or_fails_fast(tmp_path):
  """This machine has no internet except PyPI: the attempt must give up quickly."""
  start = time.monotonic()
  try:
    got = fetch.fetch_ml100k(tmp_path, routes=("grouplens",), timeout=5)
  except fetch.FetchError as e:
    assert "grouplens (https://files.grouplens.org" in str(e)
    assert time.monotonic() - start < 15
  else:
    assert got.route == "grouplens"


def _pypi_reachable() -> bool:
  try:
    urllib.request.urlopen("https://pypi.org/simple/recbole/", timeout=5).close()
    return True
  except OSError:
    return False


@pytest.mark.slow
def test_real_recbole_wheel_from_pypi(tmp_path):
  if not _pypi_reachable():
    pytest.skip("PyPI is not reachable from here")
  # PyPI answers, so the real route must work: any failure below fails the test.
  got = fetch.fetch_ml100k(tmp_path, routes=("recbole",), pip_timeout=240)
  assert got == fetch.Fetched(tmp_path / "ml-100k", "recbole", "recbole")
  for name in RECBOLE_FILES:
    assert fetch.sha256_file(tmp_path / "ml-100k" / name) == fetch.RECBOLE_SHA256[name]


# ----------------------------------------------------------------------------- larger releases

def test_fetch_movielens_archive_then_cache(tmp_path):
  site = tmp_path / "site"
  site.mkdir()
  make_zip(site / "ml-1m.zip", {
      "ml-1m/ratings.dat": "1::1::5::978300760\n2::2::3::978302109\n",
      "ml-1m/movies.dat": "1::Toy Story (1995)::Animation\n2::Heat (1995)::Action\n",
      "ml-1m/users.dat": "1::F::1::10::48067\n"})
  with serve(site) as url:
    got = fetch.fetch_movielens("ml-1m", tmp_path / "home", base_url=url)
  assert got == fetch.Fetched(tmp_path / "home" / "ml-1m", "dat", "grouplens")
  assert not (got.directory / "users.dat").exists()  # only what the loader reads
  again = fetch.fetch_movielens("ml-1m", tmp_path / "home", download_ok=False)
  assert again.route == "cache"
  ds = movielens.load_movielens(again.directory)
  assert len(ds.interactions) == 2


def test_fetch_movielens_failure_says_where_to_put_files(tmp_path):
  with pytest.raises(fetch.FetchError) as e:
    fetch.fetch_movielens("ml-25m", tmp_path, base_url=closed_port_url(), timeout=2)
  msg = str(e.value)
  assert str(tmp_path / "ml-25m" / "ratings.csv") in msg
  assert str(tmp_path / "ml-25m" / "movies.csv") in msg and "ml-25m.zip" in msg
  with pytest.raises(ValueError, match="unknown MovieLens release"):
    fetch.fetch_movielens("ml-3m", tmp_path)
  with pytest.raises(DataError, match="no MovieLens files found"):
    fetch.fetch_movielens("ml-1m", local_dir=tmp_path)


# ----------------------------------------------------------------------------- TFDS

def test_tfds_source_explains_what_is_missing():
  from sslmetric.data import tfds_source  # pylint: disable=g-import-not-at-top
  try:
    import tensorflow_datasets  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    pytest.skip("TFDS and TensorFlow are installed here")
  except ImportError:
    pass
  with pytest.raises(ImportError) as e:
    tfds_source.load_tfds_movielens()
  assert isinstance(e.value, tfds_source.TFDSUnavailable)
  msg = str(e.value)
  for needle in ("TensorFlow", "1.4 GB", "manual_dir", "DownloadConfig(manual_dir=",
                 "ml-100k.zip", "load_dataset('ml-100k')"):
    assert needle in msg


def test_core_does_not_import_tfds_source():
  code = ("import sys, sslmetric, sslmetric.data.registry, sslmetric.data.fetch; "
          "print('sslmetric.data.tfds_source' in sys.modules, 'tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, timeout=120)
  assert out.stdout.split() == ["False", "False"]
