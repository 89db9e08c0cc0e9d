"""Files: atomic writes, checksummed and safe loading, hashes. Every write goes to a
temporary file beside the target, then os.replace moves it into place, so a killed
process never leaves a half-written file under a real name. Weights and caches get
a <file>.sha256, checked on load: a damaged file is never used silently."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import tempfile
from pathlib import Path

import torch

class CorruptFileError(ValueError):
    """A file of ours that is truncated, damaged, or fails its checksum."""

class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that would need arbitrary unpickling (it could run code)."""

def project_dir() -> Path:
    """The repository root (with pyproject.toml and kd_utils/), so notebooks (run
    from notebooks/) and scripts share data/ and runs/. Else the current folder."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").exists() and (p / "kd_utils").is_dir():
            return p
    return here

def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        pass
    return True

def _remove_stale_temps(folder, name):
    # Temp names carry the writer's pid: a file whose writer is gone was left by a kill.
    for f in folder.glob(f".{name}.*.tmp"):
        m = re.match(rf"\.{re.escape(name)}\.(\d+)\.", f.name)
        if m and not _pid_alive(int(m.group(1))):
            f.unlink(missing_ok=True)

def _atomic(path, write):
    """Call write(f) on a temp file beside `path`, then move it into place."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600: others in a class could not read it
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as RuntimeError
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise OSError(f"could not write {path}: {why}. Check that {path.parent} is a writable "
                      f"folder with free space (or point KD_RUNS_DIR / KD_FIGURES_DIR elsewhere)") from None
    except BaseException:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path

def atomic_write_bytes(path, data: bytes):
    return _atomic(path, lambda f: f.write(data))

def save_json(path, obj):
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable)
    return atomic_write_bytes(path, (text + "\n").encode())

def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path} is not valid JSON ({e}); it was damaged or cut short: "
                               f"delete it (or its run folder) to rebuild it") from None

def _jsonable(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")

def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

def _sidecar(path):
    return Path(f"{path}.sha256")

def save_torch(path, obj):
    """torch.save atomically (plain containers of tensors and numbers only), then
    its SHA-256 beside it. A kill between the two leaves a file that fails its
    check, which counts as missing: never as valid."""
    path = _atomic(path, lambda f: torch.save(obj, f))
    atomic_write_bytes(_sidecar(path), (sha256_file(path) + "\n").encode())
    return path

def load_torch(path, map_location="cpu", verify=False):
    """Load a checkpoint WITHOUT executing code from it (weights_only=True).

    verify=True (files this project wrote): the file must match its .sha256.
    A file that needs arbitrary unpickling is refused with UnsafeCheckpointError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()  # read once: checked, then loaded
    if verify:
        side = _sidecar(path)
        want = side.read_text().strip() if side.exists() else None
        if want != hashlib.sha256(data).hexdigest():
            raise CorruptFileError(f"{path} does not match its checksum ({side.name} "
                                   f"{'differs' if want else 'is missing'}): the file was damaged "
                                   f"or not finished; delete it (or its run folder) to rebuild it")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated zip or garbage raises many types
        found = re.findall(r"GLOBAL ([\w.]+)", str(e)) if isinstance(e, pickle.UnpicklingError) else []
        if found:  # the weights-only unpickler refused a Python object (other errors: not a pickle at all)
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it holds pickled Python objects ({found[0]}), not only tensors, "
                f"and loading those could run code. Use weights saved as a plain state_dict from a source "
                f"you trust") from None
        raise CorruptFileError(f"{path} is not a readable PyTorch file ({type(e).__name__}): it is "
                               f"truncated or damaged; delete it (or its run folder) to rebuild it") from None

def _update(h, t):
    t = t.detach().cpu().contiguous()
    h.update(f"{tuple(t.shape)} {t.dtype};".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())

def tensor_hash(*tensors) -> str:
    """SHA-256 of tensors' shapes, dtypes and bytes: the identity of data."""
    h = hashlib.sha256()
    for t in tensors:
        _update(h, t)
    return h.hexdigest()

def state_dict_hash(model) -> str:
    """SHA-256 over a model's named tensors: the identity of a teacher in cache keys."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        _update(h, v)
    return h.hexdigest()

def fingerprint(*parts) -> str:
    """A short, stable hash of JSON-able parts: the key of caches and runs."""
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
