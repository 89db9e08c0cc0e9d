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
    """The repository root (pyproject.toml beside kd_utils/), where data/ and runs/ go; else the current folder."""
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "pyproject.toml").exists() and (p / "kd_utils").is_dir()), here)

def write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())  # on disk before it gets its real name
        os.replace(tmp, path)
        return path
    except OSError as e:
        raise OSError(f"could not write {path}: {e.strerror or e}; is {path.parent} a writable folder with free space?") from None
    finally:
        tmp.unlink(missing_ok=True)  # after an error or an interrupt; after os.replace there is nothing left

def save_json(path, obj):
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path} is not valid JSON ({e}): it was damaged or cut short") from None

def content_hash(*objs) -> str:
    """SHA-256 of plain values and tensors (shape, dtype, bytes), however nested in dicts and lists."""
    def tensor(x):  # json.dumps asks this for what JSON cannot hold: a tensor's own hash, else its repr
        if not torch.is_tensor(x):
            return repr(x)
        t = x.detach().cpu().contiguous()
        return f"tensor{tuple(t.shape)} {t.dtype} " + hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy()).hexdigest()
    return hashlib.sha256(json.dumps(objs, sort_keys=True, default=tensor).encode()).hexdigest()

def save_torch(path, obj):
    """torch.save with the content's hash inside; serialised in memory first, so a full disk says so."""
    buf = io.BytesIO()
    torch.save(dict(content=obj, sha256=content_hash(obj)), buf)
    return write_bytes(path, buf.getvalue())

def load_torch(path, map_location="cpu"):
    """Load a .pt file without running code from it; ours must match the hash inside, others load as they are."""
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, OSError) as e:  # OSError: a cut zip
        if "GLOBAL" in str(e) or Path(path).read_bytes()[:1] == b"\x80":  # a Python object, or a bare pickle
            raise UnsafeCheckpointError(f"refusing to load {path}: it holds pickled Python objects, which could run "
                                        f"code; use a plain state_dict from a source you trust") from None
        raise CorruptFileError(f"{path} is not a readable PyTorch file ({type(e).__name__}): truncated or damaged") from None
    if isinstance(obj, dict) and set(obj) == {"content", "sha256"} and content_hash(obj["content"]) != obj["sha256"]:
        raise CorruptFileError(f"{path} does not match the checksum it holds: the file was damaged")
    return obj["content"] if isinstance(obj, dict) and set(obj) == {"content", "sha256"} else obj
