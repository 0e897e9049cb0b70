"""The persistent result store: Lean's answers kept across sessions, by what they depend on.

A command's answer depends on the Lean it ran on (version, REPL flavour and build, the project's
dependencies: `namespace_of`) and on everything sent with it (header, body, options: the
callers' `result_key` parts). The store keeps deterministic answers only (`stored_result`): an
``ok``, ``sorry`` or ``error`` Lean gave; never a timeout, crash, cancel, exception, or a
heartbeat stop (whose verdict depends on a limit rather than on the text). What one entry is,
and how a row is read back into one, is ``engine.storedresult`` (its names are exported here).

Entries are data: the REPL's JSON wire format as text in an SQLite file, never pickles, so a
cache file cannot run code. The file is shared by threads (one connection behind a lock) and
processes (WAL journal, a busy timeout; a file lock around creating, checking and setting the
file aside). A file that is not ours (another format, a pickle, garbage) or is corrupt is renamed
aside with a `RuntimeWarning` and a fresh store is made; a store that cannot be written warns
once and answers every lookup with a miss. The cache never breaks a batch or a cell.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

from lean_kernel.engine.config import LeanREPLConfig
from lean_kernel.engine.storedresult import StoredResult, entry_json, read_entry, stored_result

__all__ = [
    "STORE_ENV_VAR", "STORE_FILE_NAME", "ResultStore", "StoreInfo", "StoredResult",
    "default_store_path", "namespace_of", "open_store", "result_key", "stored_result",
]  # fmt: skip

#: A path for the store, or one of `_OFF_WORDS` to turn the store off.
STORE_ENV_VAR = "LEAN_KERNEL_RESULT_CACHE"
#: The file's name in the cache folder (and in a folder given as the store's path).
STORE_FILE_NAME = "results.sqlite3"

_OFF_WORDS = ("off", "0", "false", "no", "none")
_ON_WORDS = ("on", "1", "true", "yes", "")
# The format marker of our files: a file without it (or with another) is never trusted (set
# aside). 2: the verdict column (what a batch item's verdict checks found).
_FORMAT = "lean_kernel.resultstore/2"
_SQLITE_MAGIC = b"SQLite format 3\x00"
# How long a writer waits for another process's write, and for the file lock (seconds).
_BUSY_SECONDS = 30.0
# SQLite's default limit on variables in one statement is 999 in old builds.
_KEYS_PER_QUERY = 500
_SCHEMA = (
    "CREATE TABLE lean_kernel_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE results (key TEXT PRIMARY KEY, status TEXT NOT NULL, response TEXT NOT NULL,"
    " seconds REAL NOT NULL, stored_at REAL NOT NULL, verdict TEXT)",
)

_T = TypeVar("_T")


def result_key(namespace: str, *parts: str) -> str:
    """sha256 hex of the namespace and the parts (length-prefixed, so ("ab","c") != ("a","bc"))."""
    framed = bytearray()  # hashed at once: cheaper than an update per piece
    for part in (namespace, *parts):
        data = part.encode("utf-8")
        framed += b"%d:" % len(data)
        framed += data
    return hashlib.sha256(framed).hexdigest()


def namespace_of(config: LeanREPLConfig) -> str:
    """What makes answers comparable: Lean version + REPL flavour + the REPL command (argv, env,
    and size+mtime of any argv element that is an executable file: the REPL program, rebuilt
    means other answers maybe; not data files such as a log it writes) + the project's manifest
    hash
    (``lake-manifest.json`` and ``lean-toolchain`` in the launch cwd, if present) + the options
    the server adds to every command (parallel elaboration, incrementality). Resolves the
    config (``config.resolve()``); raises what resolve raises (``ReplSetupError``)."""
    launch = config.resolve()
    files = {}
    for arg in launch.argv:
        with contextlib.suppress(OSError, ValueError):
            stat = Path(arg).stat()
            if Path(arg).is_file() and os.access(arg, os.X_OK):
                files[arg] = [stat.st_size, stat.st_mtime_ns]
    manifest = {}
    for name in ("lake-manifest.json", "lean-toolchain"):
        with contextlib.suppress(OSError):
            manifest[name] = hashlib.sha256((Path(launch.cwd) / name).read_bytes()).hexdigest()
    described = {
        "lean": launch.lean_version,
        "flavor": launch.flavor,
        "argv": launch.argv,
        "env": sorted((launch.env or {}).items()),
        "files": files,
        "manifest": manifest,
        # Fields the server adds to every command (Elab.async may reorder messages).
        "parallel": config.use_parallel_elaboration(launch),
        "incremental": config.use_incrementality(launch),
    }
    return (
        "lean-kernel:"
        + hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()
    )


def default_store_path() -> Path:
    """``<cache dir>/results.sqlite3``, the cache dir being the one REPL builds use
    (``$LEAN_KERNEL_CACHE_DIR`` or ``~/.cache/lean_kernel``)."""
    return LeanREPLConfig().cache_root / STORE_FILE_NAME


def open_store(
    spec: bool | str | os.PathLike[str] | ResultStore | None = True,
) -> ResultStore | None:
    """The store a ``cache=`` argument means: True/None -> the default store (or what
    ``$LEAN_KERNEL_RESULT_CACHE`` says: a path, or ``off``); False -> None; a path (a folder
    gets ``results.sqlite3`` in it) -> a store there; a ResultStore -> itself. The words
    ``off``/``false``/``no``/``none``/``0`` (and ``on``/``true``/``yes``/``1``) mean what they
    say, as a str or in the variable. Anything else is a ValueError saying what is accepted.
    Opening costs nothing: the file is made or checked at its first use."""
    if isinstance(spec, ResultStore):
        return spec
    if spec is None or spec is True:
        return _from_words(os.environ.get(STORE_ENV_VAR, ""))
    if spec is False:
        return None
    if isinstance(spec, os.PathLike):
        return _at(Path(spec))
    if isinstance(spec, str) and spec.strip():
        return _from_words(spec)
    raise ValueError(
        f"{spec!r} is not a result cache: give True (the default store), False (none), a path "
        "(a file, or a folder to keep results.sqlite3 in) or a ResultStore"
    )


def _from_words(text: str) -> ResultStore | None:
    word = text.strip().lower()
    if word in _OFF_WORDS:
        return None
    return ResultStore() if word in _ON_WORDS else _at(Path(text.strip()))


def _at(path: Path) -> ResultStore:
    path = path.expanduser()
    return ResultStore(path / STORE_FILE_NAME if path.is_dir() else path)


@dataclass(frozen=True)
class StoreInfo:
    """What ``%lean_cache info`` shows: the file, its entries and size on disk (WAL included),
    the files set aside by this store, and why it is miss-only (None: it works)."""

    path: Path
    entries: int
    size_bytes: int
    set_aside: list[Path] = field(default_factory=list)
    problem: str | None = None

    def describe(self) -> str:
        """A few lines for people."""
        lines = [f"result cache: {self.path}", f"entries: {self.entries}"]
        lines.append(f"size: {_size_text(self.size_bytes)}")
        if self.problem:
            lines.append(f"not in use: {self.problem}")
        lines.extend(f"set aside: {path}" for path in self.set_aside)
        return "\n".join(lines)


class ResultStore:
    """SQLite file (WAL), safe across threads and processes (filelock around schema/set-aside).

    The file is opened (made, checked, set aside if it is not a store of ours) at first use.
    Every failure of the file ends in a warning and a miss, never in an exception to the caller.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._problem: str | None = None
        self._set_aside: list[Path] = []
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[type[ResultStore], tuple[str]]:
        return (ResultStore, (str(self.path),))  # connection and lock belong to this process

    def get(self, key: str) -> StoredResult | None:
        """The entry under ``key``, or None (a miss, or an entry that no longer validates)."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, StoredResult]:
        """The entries under ``keys`` that are there (one query per few hundred keys)."""
        wanted = list(dict.fromkeys(keys))

        def read(connection: sqlite3.Connection) -> dict[str, StoredResult]:
            found: dict[str, StoredResult] = {}
            by_answer: dict[str, StoredResult] = {}  # equal answers read once (read_entry)
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    "SELECT key, status, response, seconds, verdict FROM results "
                    f"WHERE key IN ({marks})",
                    chunk,
                )
                for key, status, response, seconds, verdict in rows:
                    entry = read_entry(status, response, seconds, verdict, by_answer)
                    if entry is not None:
                        found[key] = entry
            return found

        return self._use(read, {}) if wanted else {}

    def put(self, key: str, result: StoredResult) -> None:
        """Store ``result`` under ``key`` (replacing what was there)."""
        self.put_many([(key, result)])

    def put_many(self, entries: Iterable[tuple[str, StoredResult]]) -> None:
        """Store several entries in one transaction."""
        now = time.time()
        rows = [
            (key, result.status, entry_json(result.response), float(result.seconds), now)
            + (None if result.verdict is None else entry_json(result.verdict),)
            for key, result in entries
        ]

        def write(connection: sqlite3.Connection) -> None:
            # IMMEDIATE: take the write lock up front, so a busy writer waits instead of failing.
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", rows
                )
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        if rows:
            self._use(write, None)

    def info(self) -> StoreInfo:
        """The file, its entries, its size, what was set aside, why it is miss-only if it is."""

        def count(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM results").fetchone()[0])

        entries = self._use(count, 0)
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += Path(f"{self.path}{suffix}").stat().st_size
        return StoreInfo(self.path, entries, size, list(self._set_aside), self._problem)

    def clear(self) -> int:
        """Remove every entry; the number removed. The file shrinks when no one else reads it."""

        def delete(connection: sqlite3.Connection) -> int:
            removed = connection.execute("DELETE FROM results").rowcount
            # Giving the space back needs the file to itself: skipped while another process reads.
            with contextlib.suppress(sqlite3.OperationalError):
                connection.execute("VACUUM")
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(removed)

        return self._use(delete, 0)

    def close(self) -> None:
        """Close the connection (the next use opens it again)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- the file ------------------------------------------------------------------------------

    def _use(self, operation: Callable[[sqlite3.Connection], _T], miss: _T) -> _T:
        """``operation`` on the open file, or ``miss`` when the store cannot be used."""
        with self._lock:
            connection = self._open()
            if connection is None:
                return miss
            try:
                return operation(connection)
            except sqlite3.DatabaseError as exc:
                self.close()
                if _is_corruption(exc):
                    self._replace("corrupt", exc)
                else:
                    self._give_up(f"{type(exc).__name__}: {exc}")
                return miss

    def _open(self) -> sqlite3.Connection | None:
        if self._pid != os.getpid():  # a forked child: its parent's connection is not its own
            self._pid, self._connection = os.getpid(), None
        if self._connection is not None or self._problem is not None:
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{self.path}.lock", timeout=_BUSY_SECONDS):
                self._connection = self._checked_connection()
        except (OSError, Timeout, sqlite3.Error) as exc:
            self._give_up(f"{type(exc).__name__}: {exc}")
        return self._connection

    def _checked_connection(self) -> sqlite3.Connection:
        """The open file, made if missing; one that is not ours is set aside first (under the
        file lock, so two processes never both set aside or both create)."""
        for _attempt in range(2):
            kind = _foreign_bytes(self.path)
            if kind is None:
                connection = sqlite3.connect(
                    self.path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
                )
                try:
                    kind = _check_schema(connection)
                except sqlite3.DatabaseError as exc:
                    connection.close()
                    if not _is_corruption(exc):
                        raise
                    kind = "corrupt"
                else:
                    if kind is None:
                        # WAL stays consistent without a sync per commit; a cache can lose
                        # its last writes in a power cut.
                        connection.execute("PRAGMA synchronous=NORMAL")
                        return connection
                    connection.close()
            self._set_file_aside(kind)
        raise sqlite3.DatabaseError(f"a fresh store at {self.path} could not be made")

    def _replace(self, kind: str, exc: BaseException) -> None:
        """A file found corrupt in use: set it aside (under the file lock) and start afresh."""
        try:
            with FileLock(f"{self.path}.lock", timeout=_BUSY_SECONDS):
                self._set_file_aside(kind, reason=str(exc))
        except (OSError, Timeout) as error:
            self._give_up(f"{type(error).__name__}: {error}")

    def _set_file_aside(self, kind: str, reason: str = "") -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.{kind}-{stamp}")
        counter = 1
        while aside.exists():
            counter += 1
            aside = self.path.with_name(f"{self.path.name}.{kind}-{stamp}-{counter}")
        try:
            self.path.rename(aside)
        except FileNotFoundError:  # another process set it aside first
            return
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").rename(f"{aside}{suffix}")
        self._set_aside.append(aside)
        what = "is corrupt" if kind == "corrupt" else "is not a lean_kernel result cache"
        because = f" ({reason})" if reason else ""
        warnings.warn(
            f"The result cache {self.path} {what}{because}: it was moved to {aside} and is not "
            "used; a fresh cache is started in its place.",
            RuntimeWarning,
            stacklevel=2,
        )

    def _give_up(self, problem: str) -> None:
        """From now on a miss-only store, said once."""
        if self._problem is not None:
            return
        self._problem = problem
        warnings.warn(
            f"The result cache {self.path} cannot be used ({problem}): results are not cached "
            f"or looked up this session. Set {STORE_ENV_VAR} to a writable file, or to off.",
            RuntimeWarning,
            stacklevel=2,
        )


def _foreign_bytes(path: Path) -> str | None:
    """``foreign`` when a file is there and is no SQLite file at all (a pickle, text...)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    return None if head in (b"", _SQLITE_MAGIC) else "foreign"


def _check_schema(connection: sqlite3.Connection) -> str | None:
    """Make our tables in an empty file; ``foreign`` for an SQLite file that is not ours."""
    tables = {
        name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if not tables:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            connection.execute(statement)
        connection.execute("INSERT INTO lean_kernel_meta VALUES ('format', ?)", (_FORMAT,))
        connection.execute("COMMIT")
        return None
    if tables != {"lean_kernel_meta", "results"}:
        return "foreign"
    row = connection.execute("SELECT value FROM lean_kernel_meta WHERE name = 'format'").fetchone()
    if row is None or row[0] != _FORMAT:
        return "foreign"
    connection.execute("PRAGMA journal_mode=WAL")
    return None


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    # SQLITE_CORRUPT and SQLITE_NOTADB raise the base class; subclasses are locks, permissions...
    return type(exc) is sqlite3.DatabaseError


def _size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    return f"{size / 1024:.1f} KiB" if size < 1024**2 else f"{size / 1024**2:.1f} MiB"
