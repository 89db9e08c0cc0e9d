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
import re
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
    """A checkpoint that would need arbitrary unpickling (it could run code)."""


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
            f"and plain containers, and unpickling them could run code ({_why(e)}). "
            f"Only load weights you trust, saved as a state_dict (torch.save(model.state_dict(), ...))."
        ) from None


def _why(err):
    # torch's message suggests weights_only=False, which is exactly what we must not do;
    # keep only the line that names the offending object.
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    named = [ln for ln in lines if "GLOBAL" in ln or "global" in ln]
    return (named or lines or ["unpickling error"])[0]


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


class DownloadError(RuntimeError):
    """A download that is incomplete or not the file we asked for. Nothing is left on disk."""


class HashMismatchError(DownloadError):
    pass


def _check_hash(sha256):
    # A short prefix would match almost anything: ask for torch.hub's 8 hex digits at least.
    if not re.fullmatch(r"[0-9a-fA-F]{8,64}", sha256 or ""):
        raise ValueError(f"sha256 must be 8 to 64 hex digits (a SHA-256 or its start), got {sha256!r}")
    return sha256.lower()


def verify_sha256(path, sha256: str, name=None):
    """Check a file against a full SHA-256 or a prefix of one (torch.hub style).

    On mismatch the file is deleted, so it can never be mistaken for valid.
    """
    want = _check_hash(sha256)
    got = sha256_file(path)
    if not got.startswith(want):
        os.unlink(path)
        raise HashMismatchError(
            f"{name or path} has SHA-256 {got}, expected one starting with {want}; the file "
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
    if sha256 is not None:
        _check_hash(sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            total = int(r.headers.get("Content-Length") or 0)
            _copy_with_progress(r, f, total, dest.name)
        got = os.path.getsize(tmp)
        if total and got != total:
            raise DownloadError(f"download of {url} stopped at {got} of {total} bytes; "
                                f"nothing was saved. Try again.")
        if sha256:
            verify_sha256(tmp, sha256, name=f"the download of {url}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _copy_with_progress(src, dst, total, desc):
    from tqdm.auto import tqdm

    with tqdm(total=total or None, unit="B", unit_scale=True, desc=desc) as bar:
        while block := src.read(1 << 20):
            dst.write(block)
            bar.update(len(block))
