"""Content hashes and cache keys: the one key of every cache.

Every cache key comes from :func:`cache_key`: it hashes what determines the cached result (config,
seed, data content) together with :func:`code_fingerprint` of the package modules that compute it,
and refuses absolute paths, so a changed trainer never restores an old model and a compendium
copied to another folder reruns warm.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Short hex hash of a JSON-serialisable object (keys sorted), for cache keys."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def files_digest(paths: Iterable[str | os.PathLike]) -> str:
    """Hex SHA-256 over the contents of the files, in order (their names and folders do not enter):
    the cache-key ingredient for a list of clips. A moved or copied data root gives the same digest;
    any added, removed, reordered or edited clip gives another. Each file's hash is remembered for
    the process, keyed by its resolved path, size and modification time."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(_file_digest_memo(*_file_identity(path)).encode("ascii"))
    return digest.hexdigest()


def array_digest(array) -> str:
    """``"<shape>:<dtype>:<sha256 hex>"`` of a numpy array's C-ordered bytes: the cache-key
    ingredient for in-memory data (e.g. ``(N, T)`` float32 waveforms). Convert the dtype first
    where an equal-valued array of another dtype should give the same key."""
    data = np.ascontiguousarray(array)
    return f"{data.shape}:{data.dtype}:{hashlib.sha256(data.data).hexdigest()}"


def _file_identity(path) -> tuple[str, int, int]:
    try:
        stat = os.stat(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"cache key: file {path} does not exist") from error
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=1 << 16)
def _file_digest_memo(path: str, size: int, mtime_ns: int) -> str:  # noqa: ARG001 - size, mtime key the memo
    return file_sha256(path)


@functools.lru_cache(maxsize=64)
def _package_folder(top: str) -> Path | None:
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_file(module: str) -> Path | None:
    """Source file of ``module`` of a package (a package's ``__init__.py``), found from the package's
    folder without importing anything below it; None for a name that is no module (e.g. a function)."""
    top, *rest = module.split(".")
    folder = _package_folder(top)
    if folder is None:
        return None
    base = folder.joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py") if rest else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imported_modules(module: str, file: Path) -> frozenset[str]:
    stat = file.stat()
    return _imported_modules_memo(module, str(file), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _imported_modules_memo(module: str, path: str, size: int, mtime_ns: int) -> frozenset[str]:  # noqa: ARG001
    """Modules named by every ``import`` / ``from ... import`` in ``file`` (function-level ones too),
    with ``from package import name`` also giving ``package.name``."""
    file = Path(path)
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


def code_modules(*modules: str) -> list[str]:
    """``modules`` and every module of their top-level package that they import, directly or not
    (function-level imports included), sorted. A package name brings all its modules in."""
    todo = list(modules)
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        file = _module_file(name)
        if file is None:
            continue
        seen[name] = file
        top = name.split(".")[0]
        wanted = {m for m in _imported_modules(name, file) if m == top or m.startswith(top + ".")}
        # a module's parent packages run on import; a package named here brings its modules
        wanted.update(".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1))
        if file.name == "__init__.py" and name in modules:
            wanted.update(f"{name}.{p.stem}" for p in file.parent.glob("*.py") if p.stem != "__init__")
            wanted.update(f"{name}.{p.parent.name}" for p in file.parent.glob("*/__init__.py"))
        todo.extend(sorted(wanted - set(seen)))
    return sorted(seen)


def code_fingerprint(*modules: str) -> str:
    """Hex SHA-256 of the source of :func:`code_modules` (each module's dotted name and its bytes):
    changes when any code that ``modules`` run changes, and on no other edit."""
    digest = hashlib.sha256()
    for name in code_modules(*modules):
        file = _module_file(name)
        digest.update(f"{name}\0{len(file.read_bytes())}\0".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _absolute_paths(obj: Any, where: str = "") -> Iterator[str]:
    if isinstance(obj, os.PathLike) or (isinstance(obj, str) and len(obj) > 1 and os.path.isabs(obj)
                                        and os.path.sep in obj[1:]):
        text = os.fspath(obj)
        if os.path.isabs(text):
            yield f"{where or 'value'} = {text!r}"
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _absolute_paths(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _absolute_paths(value, f"{where}[{i}]")


def cache_key(ingredients: Any, *, code: str | Sequence[str], length: int = 16) -> str:
    """The one cache key of the compendium: a short hex hash of ``ingredients`` (a JSON-serialisable
    description of everything the cached result depends on: config, seed, data content, ...) and of
    :func:`code_fingerprint` of ``code`` (the module(s) that compute it, e.g. ``__name__``).

    Raises ``ValueError`` naming the entry when ``ingredients`` hold an absolute path: key files by
    their content (:func:`files_digest`) or by a path relative to the data root instead, so a copied
    compendium finds its caches.
    """
    found = list(_absolute_paths(ingredients))
    if found:
        raise ValueError(f"cache key with an absolute path ({'; '.join(found[:3])}): key files by content "
                         "(asd_utils.storage.keys.files_digest) or by their path relative to the data root")
    code = [code] if isinstance(code, str) else list(code)
    return stable_hash({"ingredients": ingredients, "code": code_fingerprint(*code)}, length=length)
