"""Files: written whole or not at all, read without running code, damage detected.

Every write goes to a temporary file beside the target, then os.replace moves it into
place, so a killed process never leaves a half-written file under a real name. A .pt
file of ours holds its content and the SHA-256 of that content together (one file, so
no kill can separate them); loading recomputes it. torch.load runs with
weights_only=True: a file that would need to unpickle Python objects is refused."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import uuid
from pathlib import Path

import torch

class CorruptFileError(ValueError):
    """A file of ours that is truncated, damaged, or fails its checksum."""

class UnsafeCheckpointError(RuntimeError):
    """A file that would need arbitrary unpickling (it could run code)."""

def project_dir() -> Path:
    """The repository root (with pyproject.toml and kd_utils/), so notebooks (run from
    notebooks/) and scripts share data/ and runs/. Else the current folder."""
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "pyproject.toml").exists() and (p / "kd_utils").is_dir()),
                here)

def write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:  # "x": a new file, with the permissions the umask gives
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(f"could not write {path}: {e.strerror or e}. Check that {path.parent} is a writable folder "
                      f"with free space (or point KD_RUNS_DIR / KD_FIGURES_DIR elsewhere)") from None
    return path

def save_json(path, obj):
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path} is not valid JSON ({e}): it was damaged or cut short") from None

def content_hash(*objs) -> str:
    """SHA-256 of tensors (shape, dtype, bytes) and of plain values, nested in dicts and
    lists: the identity of data, weights and run settings."""
    h = hashlib.sha256()

    def feed(x):
        if torch.is_tensor(x):
            t = x.detach().cpu().contiguous()
            h.update(f"{tuple(t.shape)} {t.dtype};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                h.update(f"{k!r}:".encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        else:
            h.update(f"{x!r};".encode())
    for obj in objs:
        feed(obj)
    return h.hexdigest()

def save_torch(path, obj):
    """torch.save of plain containers of tensors and numbers, with their hash inside."""
    buf = io.BytesIO()  # serialised in memory first: a full disk then reports itself as such
    torch.save(dict(content=obj, sha256=content_hash(obj)), buf)
    return write_bytes(path, buf.getvalue())

def load_torch(path, map_location="cpu"):
    """Load a .pt file WITHOUT executing code from it (weights_only=True). A file saved by
    save_torch must match the hash it holds; any other file (a model zoo's) is returned as is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # the weights-only unpickler met a Python object
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds pickled Python objects, not only tensors ({str(e).splitlines()[0]}), "
            f"and loading those could run code. Use weights saved as a plain state_dict from a source you trust") from None
    except Exception as e:  # noqa: BLE001 - a truncated zip or garbage raises many types
        raise CorruptFileError(f"{path} is not a readable PyTorch file ({type(e).__name__}): "
                               f"it is truncated or damaged") from None
    if isinstance(obj, dict) and set(obj) == {"content", "sha256"}:
        if content_hash(obj["content"]) != obj["sha256"]:
            raise CorruptFileError(f"{path} does not match the checksum it holds: the file was damaged")
        return obj["content"]
    return obj
