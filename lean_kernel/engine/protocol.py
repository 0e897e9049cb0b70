"""Pydantic models of the Lean REPL's JSON requests and responses.

The REPL (``lake exe repl``, upstream or the LeanInteract fork) speaks JSON over stdin/stdout:

* Framing. A request is one JSON object followed by a blank line. The REPL reads lines up to the
  first blank (or whitespace-only) line, strips the trailing whitespace of each line and
  concatenates them *without* newlines, so a raw newline inside a JSON string is silently dropped
  (send ``\\n`` escapes; ``json.dumps`` always does). A request whose text starts with ``#`` or
  ``--`` is skipped and gets no response; text that is not a valid request makes the REPL exit
  (it prints ``uncaught exception`` on stderr). Each response is one JSON object, pretty-printed
  over several lines and ended by a blank line; it never contains a blank line itself.
* Ids. Every process numbers its environments (``env``) and its proof states (``proofState``)
  separately, each counting up from 0. Ids mean nothing to another process, even one started with
  the same commands. Every successful command, file or unpickle creates a new ``env``; every
  successful tactic, pickle or unpickle of a proof state creates a new ``proofState`` (so do the
  sorries of a response); pickling an environment returns the ``env`` it was given.
* Errors. A response ``{"message": "..."}`` alone (no ``env``, no ``proofState``) means the request
  failed as a whole, e.g. ``Unknown environment.`` or ``Lean error:`` followed by a tactic's
  exception; it is parsed into `LeanError`. Lean diagnostics (a type error, an unsolved goal) are
  not failures: they come as ``messages`` of a normal response that still has its ``env``.

Requests are frozen (hashable, usable as cache keys); every model keeps fields it does not know
(``extra="allow"``), so what a newer REPL adds survives a parse and a re-serialisation.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_serializer,
)

__all__ = [
    "BaseREPLQuery",
    "BaseREPLResponse",
    "Command",
    "CommandOptions",
    "CommandResponse",
    "FileCommand",
    "LeanError",
    "Message",
    "PickleEnvironment",
    "PickleProofState",
    "Pos",
    "ProofStep",
    "ProofStepResponse",
    "Response",
    "SetOption",
    "Sorry",
    "Tactic",
    "UnpickleEnvironment",
    "UnpickleProofState",
    "parse_request",
    "parse_response",
]


class _WireModel(BaseModel):
    """Frozen, alias-aware model that keeps unknown wire fields."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)


# ---------------------------------------------------------------------------------------------
# Pieces of responses


class Pos(_WireModel):
    """A position in the text sent: 1-based line, 0-based column (in codepoints)."""

    line: int
    column: int


# The REPL writes these messages for a declaration whose proof contains `sorry` (Lean changed the
# quotes around 2024).
SORRY_WARNINGS = frozenset({"declaration uses `sorry`", "declaration uses 'sorry'"})


class Message(_WireModel):
    """A Lean diagnostic. Positions are relative to the command text (``0:0`` in tactic mode)."""

    start_pos: Pos = Field(alias="pos")
    end_pos: Pos | None = Field(default=None, alias="endPos")
    severity: str
    """``error``, ``warning``, ``info`` or ``trace`` today; any other string is kept as is."""
    data: str

    def __str__(self) -> str:
        return f"{self.start_pos.line}:{self.start_pos.column}: {self.severity}: {self.data}"


class Sorry(_WireModel):
    """A ``sorry`` and the goal it stands for; its proof state can be continued with `ProofStep`.

    Sorries found while running a tactic carry no positions.
    """

    start_pos: Pos | None = Field(default=None, alias="pos")
    end_pos: Pos | None = Field(default=None, alias="endPos")
    goal: str
    proof_state: int | None = Field(default=None, alias="proofState")


class Tactic(_WireModel):
    """One tactic of a command run with ``all_tactics``, with the goals it started from."""

    start_pos: Pos = Field(alias="pos")
    end_pos: Pos = Field(alias="endPos")
    goals: str
    tactic: str
    proof_state: int | None = Field(default=None, alias="proofState")
    used_constants: list[str] = Field(default_factory=list, alias="usedConstants")


# ---------------------------------------------------------------------------------------------
# Responses

# List fields the REPL leaves out of a response when they are empty.
_OMITTED_WHEN_EMPTY = ("messages", "sorries", "tactics", "declarations", "traces")


class BaseREPLResponse(_WireModel):
    """What every successful response has: Lean's diagnostics and the sorries it found."""

    messages: list[Message] = Field(default_factory=list)
    sorries: list[Sorry] = Field(default_factory=list)

    def get_errors(self) -> list[Message]:
        """Messages of severity ``error``."""
        return [m for m in self.messages if m.severity == "error"]

    def get_warnings(self) -> list[Message]:
        """Messages of severity ``warning``."""
        return [m for m in self.messages if m.severity == "warning"]

    def has_errors(self) -> bool:
        """Whether Lean reported an error (the code does not check)."""
        return any(m.severity == "error" for m in self.messages)

    def lean_code_is_valid(self, allow_sorry: bool = True) -> bool:
        """Whether the code checks: no error, and no ``sorry`` unless *allow_sorry*."""
        if self.has_errors():
            return False
        if allow_sorry:
            return True
        return not self.sorries and not any(m.data in SORRY_WARNINGS for m in self.messages)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the REPL would send: no nulls, empty optional lists left out."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        for key in _OMITTED_WHEN_EMPTY:
            if data.get(key) == []:
                del data[key]
        return data


class CommandResponse(BaseREPLResponse):
    """Result of a command, a file, or an environment (un)pickle: the new ``env`` to build on."""

    env: int
    tactics: list[Tactic] = Field(default_factory=list)
    infotree: list[Any] | None = None
    """Raw JSON info trees, sent only when asked for with ``infotree``."""
    declarations: list[Any] | None = None
    """Raw JSON declaration records (fork only), sent only when asked for with ``declarations``."""


class ProofStepResponse(BaseREPLResponse):
    """Result of a tactic or a proof-state (un)pickle: the new ``proof_state`` and its goals."""

    proof_state: int = Field(alias="proofState")
    goals: list[str] = Field(default_factory=list)
    proof_status: str = Field(alias="proofStatus")
    """``Completed``, ``Incomplete: ...`` or ``Error: ...`` (e.g. the kernel rejected the proof)."""
    traces: list[str] | None = None

    def lean_code_is_valid(self, allow_sorry: bool = True) -> bool:
        """As for a command, and the kernel must not have rejected the proof so far."""
        return not self.proof_status.startswith("Error") and super().lean_code_is_valid(
            allow_sorry=allow_sorry
        )


class LeanError(_WireModel):
    """The REPL refused the request as a whole (unknown id, failing tactic, unreadable file...)."""

    message: str

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the REPL sent."""
        return self.model_dump(by_alias=True, exclude_none=True)


Response = CommandResponse | ProofStepResponse | LeanError
"""Any answer of the REPL: a command's, a proof step's, or a refusal."""


# ---------------------------------------------------------------------------------------------
# Requests


def _fspath(value: Any) -> Any:
    """Let a `pathlib.Path` stand for a path string; anything else is left to the type check."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


_Path = Annotated[StrictStr, BeforeValidator(_fspath), Field(min_length=1)]

# One Lean option: its name split on dots, and its value, e.g. ``(("pp", "all"), True)``.
# Tuples (not lists) keep requests hashable; the wire form uses JSON arrays.
SetOption = tuple[tuple[StrictStr, ...], StrictBool | StrictInt | StrictStr | tuple[StrictStr, ...]]


class BaseREPLQuery(_WireModel):
    """A request to the REPL. Frozen and hashable, so it can key a cache of results."""

    response_type: ClassVar[type[BaseREPLResponse]]
    """The model a successful response to this request parses into."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object to send (camelCase keys, unset options left out)."""
        # model_dump's own checks cost more than this serialisation itself, once per request.
        return self.__pydantic_serializer__.to_python(self, by_alias=True, exclude_none=True)


class CommandOptions(BaseREPLQuery):
    """Options shared by `Command` and `FileCommand`; ``None`` means "not sent"."""

    response_type: ClassVar[type[BaseREPLResponse]] = CommandResponse

    all_tactics: StrictBool | None = Field(default=None, alias="allTactics")
    root_goals: StrictBool | None = Field(default=None, alias="rootGoals")
    infotree: StrictStr | None = None
    """``full``, ``tactics``, ``original`` or ``substantive``; the REPL ignores anything else."""
    declarations: StrictBool | None = None
    """Fork only: describe each declaration of the command."""
    incrementality: StrictBool | None = None
    """Fork only: reuse the elaboration of an earlier command on the same env sharing a prefix."""
    set_options: tuple[SetOption, ...] | None = Field(default=None, alias="setOptions")
    """Fork only: options set before elaborating, e.g. ``[(("Elab", "async"), True)]``."""

    @field_serializer("set_options")
    def _set_options_as_arrays(self, value: tuple[SetOption, ...] | None) -> list | None:
        if value is None:
            return None
        return [[list(name), list(v) if isinstance(v, tuple) else v] for name, v in value]


class Command(CommandOptions):
    """Elaborate Lean text on ``env``, or in a fresh environment (where ``import`` is allowed)."""

    cmd: StrictStr
    env: StrictInt | None = None


class FileCommand(CommandOptions):
    """Elaborate a ``.lean`` file (path as the REPL process sees it) on ``env`` or a fresh one."""

    path: _Path
    env: StrictInt | None = None


class ProofStep(BaseREPLQuery):
    """Run a tactic on a proof state (from a sorry, a tactic, or an unpickle)."""

    response_type: ClassVar[type[BaseREPLResponse]] = ProofStepResponse

    tactic: Annotated[StrictStr, Field(min_length=1)]
    proof_state: StrictInt = Field(alias="proofState")


class PickleEnvironment(BaseREPLQuery):
    """Save an environment to an ``.olean`` file."""

    response_type: ClassVar[type[BaseREPLResponse]] = CommandResponse

    env: StrictInt
    pickle_to: _Path = Field(alias="pickleTo")


class UnpickleEnvironment(BaseREPLQuery):
    """Load an environment saved by `PickleEnvironment` as a new env."""

    response_type: ClassVar[type[BaseREPLResponse]] = CommandResponse

    unpickle_env_from: _Path = Field(alias="unpickleEnvFrom")


class PickleProofState(BaseREPLQuery):
    """Save a proof state to an ``.olean`` file (the REPL also answers with a new proof state)."""

    response_type: ClassVar[type[BaseREPLResponse]] = ProofStepResponse

    proof_state: StrictInt = Field(alias="proofState")
    pickle_to: _Path = Field(alias="pickleTo")


class UnpickleProofState(BaseREPLQuery):
    """Load a proof state saved by `PickleProofState`, optionally in the context of ``env``."""

    response_type: ClassVar[type[BaseREPLResponse]] = ProofStepResponse

    unpickle_proof_state_from: _Path = Field(alias="unpickleProofStateFrom")
    env: StrictInt | None = None


# The keys by which the REPL tells requests apart, in the order it tries them (first match wins;
# other keys are ignored by the REPL and kept here as extras).
_REQUEST_KEYS: tuple[tuple[tuple[str, ...], type[BaseREPLQuery]], ...] = (
    (("proofState", "tactic"), ProofStep),
    (("env", "pickleTo"), PickleEnvironment),
    (("unpickleEnvFrom",), UnpickleEnvironment),
    (("proofState", "pickleTo"), PickleProofState),
    (("unpickleProofStateFrom",), UnpickleProofState),
    (("cmd",), Command),
    (("path",), FileCommand),
)


def parse_request(data: dict[str, Any]) -> BaseREPLQuery:
    """Read a wire request into the model the REPL would read it as.

    Raises `ValueError` (a pydantic ``ValidationError`` for bad field values) when it is no request.
    """
    for keys, model in _REQUEST_KEYS:
        if all(key in data for key in keys):
            return model.model_validate(data)
    raise ValueError(f"not a REPL request (no cmd, path, tactic or pickle keys): {data!r}")


def parse_response(
    request: BaseREPLQuery, data: dict[str, Any]
) -> CommandResponse | ProofStepResponse | LeanError:
    """Read the REPL's answer to *request*: its success model, or `LeanError`."""
    if "message" in data and "env" not in data and "proofState" not in data:
        return LeanError.model_validate(data)
    # The validator itself, without model_validate's checks of its arguments: once per answer.
    model = request.response_type
    validate = _VALIDATORS.get(model)
    if validate is None:  # a pydantic class attribute is slow to get: looked up once
        validate = _VALIDATORS[model] = model.__pydantic_validator__.validate_python
    return validate(data)


_VALIDATORS: dict[type[BaseREPLResponse], Any] = {}
