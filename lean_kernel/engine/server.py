"""Talking to Lean REPL processes: ``LeanServer`` (one) and ``AutoLeanServer`` (self-healing).

A request is one JSON object followed by a blank line; the answer is one JSON object ended by a
blank line. The REPL cannot cancel a command, so timeouts, interrupts and memory limits end a
command by killing the process (as a tree), and ``AutoLeanServer`` then starts a fresh one and
replays what callers asked to keep.

Env and proof-state ids handed out by a server are unique across restarts: the ids of a new
process are shifted past every id handed out before, so an id from a dead process is refused
with ``StaleStateError`` instead of silently naming a different state in the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import weakref
from typing import Any

import psutil

from lean_kernel.engine.config import LeanREPLConfig, ReplLaunch
from lean_kernel.engine.process import ReplProcess, kill_tree, monotonic_deadline
from lean_kernel.engine.protocol import (
    BaseREPLQuery,
    Command,
    CommandResponse,
    FileCommand,
    LeanError,
    ProofStepResponse,
    parse_request,
    parse_response,
)
from lean_kernel.engine.sessioncache import ReplaySessionCache, SessionEntry, StateKind
from lean_kernel.errors import (
    LeanKernelError,
    ReplCancelledError,
    ReplCrashedError,
    ReplMemoryError,
    ReplProtocolError,
    ReplSetupError,
    ReplTimeoutError,
    StaleStateError,
)

Response = CommandResponse | ProofStepResponse | LeanError

_ID_FIELDS = ("env", "proofState")
_POLL_SLICE_S = 0.05


class LeanServer:
    """One Lean REPL process, started in its own session; one request at a time, thread-safe.

    ``run`` sends a typed request and returns the typed response (or ``LeanError`` when the REPL
    answers with an error object). Failures of the process itself raise: ``ReplTimeoutError``
    (a ``TimeoutError``), ``ReplCrashedError``, ``ReplProtocolError``, ``ReplMemoryError``,
    ``ReplCancelledError``; their messages carry the tail of the REPL's stderr.
    """

    def __init__(self, config: LeanREPLConfig | None = None) -> None:
        self.config = config if config is not None else LeanREPLConfig()
        self.launch: ReplLaunch = self.config.resolve()
        self._lock = threading.RLock()
        self._proc: ReplProcess | None = None
        self._finalizer: weakref.finalize | None = None
        self.generation = 0
        self._base = dict.fromkeys(_ID_FIELDS, 0)
        self._next_id = dict.fromkeys(_ID_FIELDS, 0)
        self._kill_reason: str | None = None
        self._busy_since: float | None = None
        self._restart_note = ""
        self._command_options = _command_options(self.config, self.launch)
        self.start()

    # -- process lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start a REPL process (a no-op when one is running)."""
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return
            try:
                proc = ReplProcess(
                    self.launch.argv,
                    cwd=self.launch.cwd,
                    env=self.launch.env,
                    memory_hard_limit_mb=self.config.memory_hard_limit_mb,
                )
            except OSError as err:
                raise ReplSetupError(
                    f"Could not start the Lean REPL ({' '.join(self.launch.argv)}): {err}. "
                    "Check the REPL command (the LEAN_KERNEL_REPL environment variable or "
                    "LeanREPLConfig(repl_command=...)), or run `python -m lean_kernel doctor`."
                ) from err
            self._proc = proc
            self._finalizer = weakref.finalize(self, kill_tree, proc.popen)
            self.generation += 1
            self._base = dict(self._next_id)
            self._kill_reason = None

    def kill(self) -> None:
        """Kill the REPL process tree now; ids it handed out become stale."""
        with self._lock:
            proc, self._proc = self._proc, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            if proc is not None:
                proc.kill()

    def restart(self) -> None:
        """Replace the REPL process with a fresh one."""
        with self._lock:
            self.kill()
            self.start()

    def close(self) -> None:
        """Kill the REPL process; the server cannot be used afterwards."""
        self.kill()

    def __enter__(self) -> LeanServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_alive(self) -> bool:
        """Whether the REPL process is running."""
        proc = self._proc
        return proc is not None and proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The REPL process id (the root of its process tree), or None when not running."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def memory_mb(self) -> float:
        """Resident memory of the REPL process tree, in MB (0 when not running)."""
        proc = self._proc
        return proc.memory_mb() if proc is not None else 0.0

    def stderr_tail(self, limit: int = 4000) -> str:
        """The last characters the REPL wrote to stderr."""
        proc = self._proc
        return proc.stderr_tail(limit) if proc is not None else ""

    # -- requests ------------------------------------------------------------------------------

    def run(
        self,
        request: BaseREPLQuery,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Response:
        """Send one request and return the REPL's typed answer.

        ``timeout`` (seconds; default ``config.timeout``) and a set ``cancel`` event both kill
        the REPL process, since Lean cannot abandon a command half way.
        """
        if not isinstance(request, BaseREPLQuery):
            raise TypeError(
                f"run() takes a request model such as Command(cmd=...), not "
                f"{type(request).__name__}; use run_dict() for raw JSON objects"
            )
        payload = request.to_wire()
        if self._command_options and isinstance(request, (Command, FileCommand)):
            payload = {**self._command_options, **payload}
        return parse_response(request, self._roundtrip(payload, timeout, cancel))

    def run_dict(
        self,
        data: dict[str, Any],
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Send a raw JSON request and return the raw JSON answer (ids translated as in run).

        The dict is checked first: the REPL exits on a request it cannot read, so a mistyped
        request raises ``ValueError`` here and the REPL (and its states) live on.
        """
        if not isinstance(data, dict):
            raise TypeError(f"run_dict() takes a dict, not {type(data).__name__}")
        try:
            parse_request(data)
        except ValueError as err:
            raise ValueError(
                f"{err}. A request needs `cmd` (command), `path` (file), `tactic` + `proofState`"
                ", `pickleTo`, `unpickleEnvFrom` or `unpickleProofStateFrom`."
            ) from None
        return self._roundtrip(data, timeout, cancel)

    async def async_run(
        self, request: BaseREPLQuery, *, timeout: float | None = None, **kwargs: Any
    ) -> Response:
        """``run`` without blocking the event loop; cancelling the task kills the command."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(
                self.run, request, timeout=timeout, cancel=cancel, **kwargs
            )
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _roundtrip(
        self, payload: dict[str, Any], timeout: float | None, cancel: threading.Event | None
    ) -> dict[str, Any]:
        with self._lock:
            proc = self._running_process()
            payload = self._to_process_ids(payload)
            message = (json.dumps(payload, ensure_ascii=False) + "\n\n").encode()
            if timeout is None:
                timeout = self.config.timeout
            deadline = monotonic_deadline(timeout)

            def check() -> None:
                if cancel is not None and cancel.is_set():
                    self._abort(proc, "cancel")
                    raise ReplCancelledError(
                        "The command was cancelled; the REPL process was killed.", started=True
                    )
                if deadline is not None and time.monotonic() >= deadline:
                    self._abort(proc, "timeout")
                    raise ReplTimeoutError(
                        f"The REPL did not answer within {timeout:g} s; its process was killed. "
                        "Raise the timeout (run(..., timeout=...) or LeanREPLConfig(timeout=...))"
                        " if the command needs longer.",
                        timeout=timeout,
                    )

            self._busy_since = time.monotonic()
            try:
                proc.write(message, check)
                text = self._read_response(proc, deadline, cancel, check)
            except EOFError:
                raise self._died(proc) from None
            finally:
                self._busy_since = None
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                self._abort(proc, "protocol")
                raise ReplProtocolError(
                    "The REPL wrote something that is not a JSON object; its process was killed. "
                    f"Output: {text[:500]!r}" + _stderr_note(proc)
                )
            return self._from_process_ids(data)

    def _read_response(
        self,
        proc: ReplProcess,
        deadline: float | None,
        cancel: threading.Event | None,
        check,
    ) -> str:
        buffer = bytearray()
        scanned = 0
        while True:
            if deadline is None and cancel is None:
                chunk = proc.read_chunk(None)
            else:
                wait = _POLL_SLICE_S if cancel is not None else deadline - time.monotonic()
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                chunk = proc.read_chunk(wait)
                if chunk is None:
                    check()
                    continue
            if not chunk:
                raise EOFError
            buffer += chunk
            start = len(buffer) - len(buffer.lstrip())
            end = buffer.find(b"\n\n", max(scanned - 1, start))
            scanned = len(buffer)
            if end >= 0:
                if buffer[end + 2 :].strip():
                    self._abort(proc, "protocol")
                    raise ReplProtocolError(
                        "The REPL wrote more than one answer to a single request; its process "
                        f"was killed. Output: {bytes(buffer[:500])!r}" + _stderr_note(proc)
                    )
                return buffer[start:end].decode("utf-8", "replace")

    def _running_process(self) -> ReplProcess:
        proc = self._proc
        if proc is None:
            raise ReplCrashedError(
                "The REPL process is not running (it was killed or closed); call restart(), "
                "or use AutoLeanServer, which restarts by itself."
            )
        if not proc.is_alive():
            raise self._died(proc)
        return proc

    def _abort(self, proc: ReplProcess, reason: str) -> None:
        self._kill_reason = reason
        proc.kill()

    def _died(self, proc: ReplProcess) -> LeanKernelError:
        """The error for a REPL that stopped answering, by what killed it."""
        with contextlib.suppress(Exception):
            proc.popen.wait(timeout=2)
        code = proc.returncode
        reason = self._kill_reason
        proc.kill()
        if reason == "memory":
            return ReplMemoryError(
                f"The REPL went over its memory limit ({self._memory_note}) and was killed. "
                "Raise max_process_memory / max_total_memory, or split the work.",
                reason=self._memory_note,
            )
        return ReplCrashedError(
            f"The REPL process exited (code {code}) before answering." + _stderr_note(proc),
            exit_code=code,
        )

    _memory_note = "memory limit"

    # -- ids unique across restarts --------------------------------------------------------

    def _to_process_ids(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.generation == 1:
            return payload
        for field in _ID_FIELDS:
            value = payload.get(field)
            if isinstance(value, int) and value >= 0:
                base = self._base[field]
                if value < base:
                    what = "env" if field == "env" else "proof state"
                    raise StaleStateError(
                        f"{what} {value} belonged to a REPL process that has since been "
                        f"replaced{self._restart_note}, and it was not kept in the session "
                        "cache. Run the command that built it again, or keep states across "
                        "restarts with AutoLeanServer.run(..., add_to_session_cache=True)."
                    )
                payload = {**payload, field: value - base}
        return payload

    def _from_process_ids(self, data: dict[str, Any]) -> dict[str, Any]:
        env = data.get("env")
        if isinstance(env, int):
            env += self._base["env"]
            data["env"] = env
            if env >= self._next_id["env"]:
                self._next_id["env"] = env + 1
        base = self._base["proofState"]
        top = self._next_id["proofState"] - 1
        items = [data]
        for key in ("sorries", "tactics"):
            items.extend(data.get(key) or ())
        for item in items:
            state = item.get("proofState") if isinstance(item, dict) else None
            if isinstance(state, int):
                state += base
                item["proofState"] = state
                top = max(top, state)
        self._next_id["proofState"] = top + 1
        return data


class AutoLeanServer(LeanServer):
    """A ``LeanServer`` that survives its REPL: restarts after a crash, timeout or memory blow-up.

    The failing request is reported (its exception is re-raised), not retried; the REPL is
    restarted at once, so the next request pays nothing, and the session cache is replayed.
    States kept with ``add_to_session_cache=True`` get stable negative ids valid across restarts.
    A watchdog thread samples the REPL's memory during long commands and kills it over the limit.
    """

    def __init__(
        self,
        config: LeanREPLConfig | None = None,
        *,
        max_total_memory: float = 0.8,
        max_process_memory: float | None = None,
        max_restart_attempts: int = 5,
        session_cache: ReplaySessionCache | None = None,
        memory_check_interval: float = 0.1,
    ) -> None:
        self.max_total_memory = max_total_memory
        self.max_process_memory = max_process_memory
        self.max_restart_attempts = max_restart_attempts
        self.memory_check_interval = memory_check_interval
        self.session_cache = session_cache if session_cache is not None else ReplaySessionCache()
        self.restart_count = 0
        self._kept: dict[tuple[StateKind, int], int] = {}
        self._last_memory_check = 0.0
        self._replaying = False
        super().__init__(config)
        self._stop_watchdog = threading.Event()
        weakref.finalize(self, self._stop_watchdog.set)
        threading.Thread(
            target=_watchdog,
            args=(weakref.ref(self), self._stop_watchdog, memory_check_interval),
            name="repl-memory-watchdog",
            daemon=True,
        ).start()

    def close(self) -> None:
        """Kill the REPL process and stop the memory watchdog."""
        self._stop_watchdog.set()
        super().close()

    def run(
        self,
        request: BaseREPLQuery,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        add_to_session_cache: bool = False,
    ) -> Response:
        """Like ``LeanServer.run``; with ``add_to_session_cache`` the state survives restarts.

        Negative ids (from ``add_to_session_cache``) may be used wherever an env or proof-state
        id goes; they are translated to the current process's ids.
        """
        with self._lock:
            self._ensure_healthy()
            response = super().run(self._resolve_kept(request), timeout=timeout, cancel=cancel)
            if add_to_session_cache and not isinstance(response, LeanError):
                response = self._keep(request, response)
            return response

    def remove_from_session_cache(self, state_id: int, kind: StateKind = "env") -> None:
        """Forget a kept state: it is no longer replayed and its id is refused."""
        with self._lock:
            self.session_cache.remove(kind, state_id)
            self._kept.pop((kind, state_id), None)

    def clear_session_cache(self) -> None:
        """Forget every kept state."""
        with self._lock:
            self.session_cache.clear()
            self._kept.clear()

    def _roundtrip(
        self, payload: dict[str, Any], timeout: float | None, cancel: threading.Event | None
    ) -> dict[str, Any]:
        if self._replaying:
            return super()._roundtrip(payload, timeout, cancel)
        try:
            return super()._roundtrip(payload, timeout, cancel)
        except (ReplCrashedError, ReplTimeoutError, ReplCancelledError, ReplMemoryError) as err:
            self._recover(f" after {type(err).__name__}")
            raise
        except ReplProtocolError:
            self._recover(" after a protocol error")
            raise

    # -- restarts ------------------------------------------------------------------------------

    def _ensure_healthy(self) -> None:
        if not self.is_alive():
            self._recover(" (the process had exited)")
            return
        now = time.monotonic()
        if now - self._last_memory_check >= 1.0:
            self._last_memory_check = now
            over = self._over_memory()
            if over:
                self._recover(f" because {over}")

    def _recover(self, why: str) -> None:
        """Start a fresh process (with backoff) and replay the session cache into it."""
        last_error: Exception | None = None
        for attempt in range(max(self.max_restart_attempts, 1)):
            if attempt:
                time.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))
            try:
                LeanServer.restart(self)
                self.restart_count += 1
                self._restart_note = f" (restart at {time.strftime('%H:%M:%S')}{why})"
                self._replay()
                return
            except ReplSetupError:
                raise
            except (LeanKernelError, OSError) as err:
                last_error = err
        self.kill()
        raise ReplCrashedError(
            f"The REPL could not be restarted after {self.max_restart_attempts} attempts: "
            f"{last_error}"
        )

    def _replay(self) -> None:
        self._kept.clear()
        for entry in self.session_cache.entries():
            self._replay_entry(entry)

    def _replay_entry(self, entry: SessionEntry) -> None:
        """Rebuild one kept state; one that cannot be rebuilt stays unmapped and is refused."""
        try:
            request = self._resolve_kept(entry.request, replaying=True)
        except StaleStateError:
            return
        self._replaying = True
        try:
            response = LeanServer.run(self, request)
        finally:
            self._replaying = False
        if not isinstance(response, LeanError):
            self._remember(entry, response)

    def _remember(self, entry: SessionEntry, response: CommandResponse | ProofStepResponse) -> None:
        own = response.env if isinstance(response, CommandResponse) else response.proof_state
        self._kept[(entry.kind, entry.key)] = own
        for key, sorry in zip(entry.sorry_keys, response.sorries, strict=False):
            if sorry.proof_state is not None:
                self._kept[("proof_state", key)] = sorry.proof_state

    def _keep(self, request: BaseREPLQuery, response: CommandResponse | ProofStepResponse):
        kind: StateKind = "env" if isinstance(response, CommandResponse) else "proof_state"
        entry = self.session_cache.add(request, kind, num_sorries=len(response.sorries))
        self._remember(entry, response)
        sorries = [
            sorry.model_copy(update={"proof_state": key})
            for sorry, key in zip(response.sorries, entry.sorry_keys, strict=False)
        ]
        field = "env" if kind == "env" else "proof_state"
        return response.model_copy(update={field: entry.key, "sorries": sorries})

    def _resolve_kept(self, request: BaseREPLQuery, replaying: bool = False) -> BaseREPLQuery:
        """Replace negative (kept) ids in ``request`` by this process's ids."""
        update = {}
        for field, kind in (("env", "env"), ("proof_state", "proof_state")):
            value = getattr(request, field, None)
            if isinstance(value, int) and value < 0:
                update[field] = self._own_id(kind, value, replaying)
        return request.model_copy(update=update) if update else request

    def _own_id(self, kind: StateKind, key: int, replaying: bool) -> int:
        own = self._kept.get((kind, key))
        if own is not None:
            return own
        if not replaying and self.session_cache.contains(kind, key):
            # Kept by another server sharing the cache: replay what this process has not seen.
            for entry in self.session_cache.entries():
                if (entry.kind, entry.key) not in self._kept:
                    self._replay_entry(entry)
            own = self._kept.get((kind, key))
            if own is not None:
                return own
        what = "env" if kind == "env" else "proof state"
        if self.session_cache.contains(kind, key):
            raise StaleStateError(
                f"{what} {key} is in the session cache but could not be rebuilt in the new REPL "
                "process (replaying its command failed, or a state it depends on was removed)."
            )
        raise StaleStateError(
            f"{what} {key} is not in the session cache (it was removed, or never kept). "
            "Negative ids only come from run(..., add_to_session_cache=True)."
        )

    # -- memory ----------------------------------------------------------------------------

    def _over_memory(self, proc: ReplProcess | None = None) -> str | None:
        """Why the REPL (``proc``, default the current one) is over a memory limit, or None."""
        if self.max_process_memory is not None:
            used = proc.memory_mb() if proc is not None else self.memory_mb()
            if used > self.max_process_memory:
                return f"the REPL used {used:.0f} MB > max_process_memory={self.max_process_memory}"
        if self.max_total_memory < 1.0:
            fraction = psutil.virtual_memory().percent / 100
            if fraction > self.max_total_memory:
                return (
                    f"the machine's memory is {fraction:.0%} used "
                    f"> max_total_memory={self.max_total_memory:.0%}"
                )
        return None

    def _watch_memory(self) -> None:
        """Called by the watchdog: kill the REPL when a long command pushes memory over a limit."""
        busy_since = self._busy_since
        proc = self._proc
        if busy_since is None or time.monotonic() - busy_since < self.memory_check_interval:
            return
        if proc is None:
            return
        # Measure and kill the same process: the main thread may have replaced it meanwhile.
        over = self._over_memory(proc)
        if over and self._proc is proc and self._busy_since is not None:
            self._memory_note = over
            self._kill_reason = "memory"
            proc.send_kill()


def _watchdog(ref: weakref.ref, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        server = ref()
        if server is None:
            return
        with contextlib.suppress(Exception):
            server._watch_memory()
        del server


def _command_options(config: LeanREPLConfig, launch: ReplLaunch) -> dict[str, Any]:
    """Fields added to every command, when the config enables them and the REPL supports them."""
    options: dict[str, Any] = {}
    if config.use_incrementality(launch):
        options["incrementality"] = True
    if config.use_parallel_elaboration(launch):
        options["setOptions"] = [[["Elab", "async"], True]]
    return options


def _stderr_note(proc: ReplProcess) -> str:
    tail = proc.stderr_tail(2000).strip()
    return f"\nREPL stderr (last lines):\n{tail}" if tail else ""
