"""Files: atomic writes, safe checkpoint loading, hashing and downloads.

Every file the project writes goes through here, so an interrupted kernel or a
killed process never leaves a half-written file that looks valid: we write a
temporary file in the same folder and `os.replace` it over the target (atomic
on POSIX and Windows).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import urllib.request
from pathlib import Path

import torch


def project_dir() -> Path:
    """The repository root (the folder with pyproject.toml and kd_utils/), so that
    notebooks (run from notebooks/) and scripts (run from the root) share data/,
    runs/ and figures/. Falls back to the current folder."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").exists() and (p / "kd_utils").is_dir():
            return p
    return here


def _atomic(path, write):
    """Call write(f) on a temp file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path, data: bytes):
    return _atomic(path, lambda f: f.write(data))


def save_json(path, obj):
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable)
    return atomic_write_bytes(path, (text + "\n").encode())


def load_json(path):
    with open(path) as f:
        return json.load(f)


def _jsonable(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def save_torch(path, obj):
    """torch.save, atomically. Only tensors, numbers, strings, lists and dicts."""
    return _atomic(path, lambda f: torch.save(obj, f))


class UnsafeCheckpointError(RuntimeError):
    pass


def load_torch(path, map_location="cpu"):
    """Load a checkpoint WITHOUT executing code from it (weights_only=True).

    A file that needs arbitrary unpickling (a pickled class, a function, a
    `__reduce__` trick) is refused with UnsafeCheckpointError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains Python objects other than tensors "
            f"and plain containers, and unpickling them could run code. Only load "
            f"weights you trust, saved as a state_dict. ({str(e).splitlines()[0]})"
        ) from None


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(*parts) -> str:
    """A short, stable hash of JSON-able parts: the key of caches and runs."""
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class HashMismatchError(RuntimeError):
    pass


def verify_sha256(path, sha256: str):
    """Check a file against a full SHA-256 or a prefix of one (torch.hub style).

    On mismatch the file is deleted, so it can never be mistaken for valid.
    """
    got = sha256_file(path)
    if not got.startswith(sha256.lower()):
        os.unlink(path)
        raise HashMismatchError(
            f"{path} has SHA-256 {got}, expected one starting with {sha256}; the file "
            f"was deleted. The download was corrupt or truncated, or the file changed "
            f"upstream: try again, or pass a local weights file."
        )
    return got


def download(url: str, dest, sha256: str | None = None, timeout: float = 60):
    """Download `url` to `dest` atomically, verifying its SHA-256 (or prefix).

    The bytes go to a temp file beside `dest`; only a complete download whose
    hash matches is moved into place. A partial or wrong file is deleted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            total = int(r.headers.get("Content-Length") or 0)
            from tqdm.auto import tqdm

            with tqdm(total=total or None, unit="B", unit_scale=True, desc=dest.name) as bar:
                while block := r.read(1 << 20):
                    f.write(block)
                    bar.update(len(block))
        if total and os.path.getsize(tmp) != total:
            raise HashMismatchError(
                f"download of {url} stopped at {os.path.getsize(tmp)} of {total} bytes"
            )
        if sha256:
            verify_sha256(tmp, sha256)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
