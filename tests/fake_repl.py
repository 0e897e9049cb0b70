#!/usr/bin/env python3
"""A protocol-faithful fake of the Lean 4 REPL, for tests and benchmarks.

Why it exists: the engine, kernel and batch tests need a REPL that answers exactly like the real
one (framing, id numbering, error objects, positions, Lean's JSON layout) but starts fast, needs
no Lean toolchain, and can be told to crash, hang, flood stderr, eat memory or run slowly on
cue. It elaborates a small deterministic subset of Lean; what lies outside that subset is
accepted optimistically rather than rejected.

Like the real REPL (REPL/Main.lean), it dies with `uncaught exception: {"message": ...}` on
stderr and exit code 1 when a query is not JSON (an extra blank line counts) or is no known
request, or when an unpickle file cannot be read; a query starting with `#` or `--` gets no
answer; lines of a query are joined without newlines; the last query may end at EOF.

Usage: python fake_repl.py [--import-cost SECONDS] [--char-cost SECONDS]
                           [--heartbeat-rate PER_SECOND] [--flavor fork|upstream] [--log FILE]
                           [--crash-after N] [--memory-baseline MB] [--lean-version VERSION]
                           [--report-import-errors]
Flags in the environment variable FAKE_REPL_ARGS (shell syntax) are appended to the argv.
  --import-cost   sleep per command with `import` lines (or unpickled env with imports)
  --char-cost     sleep per character elaborated; in the fork flavour, with
                  "incrementality": true, a prefix shared with an earlier command on the same
                  parent env is free (an import header included)
  --heartbeat-rate  heartbeats (Lean's `maxHeartbeats` unit: thousands of small allocations)
                  elaboration burns per second of its cost; 0 (the default) counts none. With a
                  rate, the time of each top-level command (its characters' --char-cost, and
                  the `#fake_sleep` / `#fake_hang` lines inside it, or before the next command)
                  is spent while elaborating that command, under Lean's limit: the
                  `maxHeartbeats` option in effect for it (`set_option ... in` on it, a
                  `set_option` earlier, the fork's `setOptions` on the session's first command;
                  default 200000, 0 = none). A command that would burn more stops after
                  limit / rate seconds with Lean's error on the declaration ("(deterministic)
                  timeout at `whnf`, maximum number of heartbeats (N) has been reached", its Note
                  and Hint, as Lean words it in the 4.33 era: `throwMaxHeartbeat` in
                  src/Lean/CoreM.lean); it is not added, the commands after it run, and the env
                  is returned as Lean does. Import costs are not heartbeats.
  --flavor        fork (default: incrementality, declarations, setOptions) or upstream.
                  Like the fork (REPL/Main.lean, up to v1.3.18), `setOptions` only applies to a
                  command without `env` (it sets the new session's options, which every env
                  built on it inherits); on a command with `env` it is read and ignored, and
                  with "incrementality": true a header seen before keeps the options it was
                  first elaborated with. Upstream ignores the field.
  --log           append {"pid", "t", "elapsed", "request"} as one JSON line per query
  --crash-after   crash on receiving the Nth query
  --memory-baseline  allocate and hold MB of resident memory at start
  --lean-version  the Lean release it plays (e.g. 4.19.0): `#eval Lean.versionString` answers
                  it as Lean does ("4.19.0", quoted); without it that name does not evaluate.
                  It also picks the axioms `native_decide` leaves (see NATIVE_AXIOM_ERAS);
                  without it the fake plays the 4.32/4.33 era.
  --report-import-errors  report an import Lean cannot find, as a REPL with the fix
                  (leanprover-community/repl PRs #73 and #141, unmerged) does: one error
                  `unknown module prefix 'X' ...` at line 1, column 0, endPos null. Without it,
                  like the real REPL (fork up to v1.3.18, upstream), the message is dropped and
                  the answer is a bare {"env": N}. Either way the env is Lean's fallback after
                  a failed header: EMPTY, not even Init (`#check Nat` says Nat is unknown).

`#print axioms NAME` answers like Lean (src/Lean/Elab/Print.lean, `printAxiomsOf`): one info
message on the `#print` token, `'Full.Name' depends on axioms: [a, b]` (sorted by `Name.lt`)
or `'Full.Name' does not depend on any axioms`. A declaration's axioms are collected through
the constants it mentions (transitively, like `Lean.collectAxioms`) plus its own: `sorryAx`
for any sorry (an error's synthetic sorry too: Lean adds such a declaration, with sorryAx),
the axiom itself for `axiom`, the native-evaluation axioms of `native_decide`, and the
standard axioms a few tactics' proof terms plausibly use (TACTIC_AXIOMS). A value that is
just a constant (`example : STATEMENT := @foo`, how a statement is checked) must have the
expected type up to definitional equality, as far as `defeq_form` models it (`n + 0 = n` is
`n = n`, `2 ^ 10` is `1024`; `0 + n` is not `n`), else Lean's `type mismatch`.

Fault directives, as lines of a `cmd` or `tactic` text:
  #fake_crash [CODE]       print a panic line on stderr and exit with CODE (default 1), no answer
  #fake_hang               never answer
  #fake_sleep SECONDS      sleep, then answer normally
  #fake_garbage            write a framed non-JSON block instead of the answer
  #fake_stderr BYTES       write BYTES bytes to stderr, then answer normally
  #fake_memory MB [SECS]   allocate and keep MB of resident memory (spread over SECS), then answer
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from bisect import bisect_right
from collections.abc import Iterator
from itertools import chain
from json.encoder import encode_basestring as encode_string

USAGE = (
    "usage: fake_repl.py [--import-cost SECONDS] [--char-cost SECONDS] "
    "[--heartbeat-rate PER_SECOND] [--flavor fork|upstream] [--log FILE] [--crash-after N] "
    "[--memory-baseline MB] [--lean-version VERSION] [--report-import-errors]"
)

#: The release `--lean-version` plays ("" when not given).
LEAN_VERSION = ""

# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


class Options:
    """Settings of one fake REPL process."""

    def __init__(self) -> None:
        self.import_cost = 0.0
        self.char_cost = 0.0
        self.heartbeat_rate = 0.0
        self.flavor = "fork"
        self.log: str | None = None
        self.crash_after = 0
        self.memory_baseline = 0.0
        self.lean_version = ""
        self.report_import_errors = False


_FLAGS = {
    "--import-cost": ("import_cost", float),
    "--char-cost": ("char_cost", float),
    "--heartbeat-rate": ("heartbeat_rate", float),
    "--flavor": ("flavor", str),
    "--log": ("log", str),
    "--crash-after": ("crash_after", int),
    "--memory-baseline": ("memory_baseline", float),
    "--lean-version": ("lean_version", str),
}
#: Flags without a value: they set an attribute to True.
_SWITCHES = {"--report-import-errors": "report_import_errors"}


def _usage_error(message: str) -> None:
    sys.stderr.write(f"fake_repl.py: {message}\n{USAGE}\n")
    sys.exit(2)


def parse_options(argv: list[str]) -> Options:
    """Parse flags like `--char-cost 0.001` or `--char-cost=0.001`."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        if arg in _SWITCHES:
            setattr(opts, _SWITCHES[arg], True)
            continue
        name, eq, value = arg.partition("=")
        if name not in _FLAGS:
            _usage_error(f"unknown argument {arg!r}")
        if not eq:
            if i >= len(argv):
                _usage_error(f"{name} needs a value")
            value = argv[i]
            i += 1
        attr, convert = _FLAGS[name]
        try:
            setattr(opts, attr, convert(value))
        except ValueError:
            _usage_error(f"bad value for {name}: {value!r}")
    if opts.flavor not in ("fork", "upstream"):
        _usage_error("--flavor must be fork or upstream")
    if not opts.heartbeat_rate >= 0:
        _usage_error("--heartbeat-rate must be 0 or more")
    return opts


# ---------------------------------------------------------------------------------------------
# JSON output laid out like Lean's `Json.pretty` (width 80, keys in reverse order)
# ---------------------------------------------------------------------------------------------

WIDTH = 80


def _flat(value: object, memo: dict) -> str:
    """One-line rendering of `value` (memoised per node for the duration of one render)."""
    if isinstance(value, str):
        return encode_string(value)
    if isinstance(value, (dict, list)):
        key = id(value)
        cached = memo.get(key)
        if cached is not None:
            return cached
        if isinstance(value, dict):
            items = [
                encode_string(k) + ": " + _flat(value[k], memo) for k in sorted(value, reverse=True)
            ]
            text = "{" + ", ".join(items) + "}"
        else:
            text = "[" + ", ".join([_flat(v, memo) for v in value]) + "]"
        memo[key] = text
        return text
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _layout(value: object, indent: int, trail: int, out: list[str], memo: dict) -> None:
    flat = _flat(value, memo)
    if len(flat) + trail <= WIDTH - indent or not isinstance(value, (dict, list)) or not value:
        out.append(flat)
        return
    inner = indent + 1
    newline = ",\n" + " " * inner
    if isinstance(value, list):
        out.append("[")
        last = len(value) - 1
        for i, item in enumerate(value):
            _layout(item, inner, 1 if i < last else trail + 1, out, memo)
            if i < last:
                out.append(newline)
        out.append("]")
        return
    out.append("{")
    keys = sorted(value, reverse=True)
    last = len(keys) - 1
    for i, key in enumerate(keys):
        item_trail = 1 if i < last else trail + 1
        head = encode_string(key) + ":"
        item = value[key]
        item_flat = _flat(item, memo)
        if len(head) + 1 + len(item_flat) + item_trail <= WIDTH - inner:
            out.append(head + " " + item_flat)
        else:
            out.append(head + "\n" + " " * inner)
            _layout(item, inner, item_trail, out, memo)
        if i < last:
            out.append(newline)
    out.append("}")


def render_json(value: object) -> str:
    """Lay out `value` the way the REPL prints its answers."""
    out: list[str] = []
    _layout(value, 0, 0, out, {})
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Lean text: tokens and positions
# ---------------------------------------------------------------------------------------------

_IDENT = r"(?:(?!λ)[^\W\d]|_)[\w'!?✝]*(?:\.(?:(?:(?!λ)[^\W\d]|_)[\w'!?✝]*|\d+))*"
_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<bc>/-)"
    r"|(?P<lc>--[^\n]*)"
    r'|(?P<str>"(?:[^"\\]|\\.)*"?)'
    r"|(?P<chr>'(?:[^'\\\n]|\\.)')"
    r"|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<hash>\#[A-Za-z_]\w*)"
    r"|(?P<id>«[^»]*»|" + _IDENT + r")"
    r"|(?P<mvar>\?(?:[^\W\d]|_)[\w'!?]*)"
    r"|(?P<sym>:=|=>|<->|->|<-|<;>|<\|>|\|>\.|\|>|<\||\.\.|::|\+\+|<=|>=|!=|==|&&|\|\||@\[|#\[|"
    r"\.\{|⁻¹|\S)"
)
_COMMENT_DELIM = re.compile(r"/-|-/")
_NEWLINE = re.compile(r"\n")


class Tok:
    """One Lean token: `line` is 0-based, `col` counts characters, `first` = first on its line."""

    __slots__ = ("kind", "text", "start", "end", "line", "col", "first")

    def __init__(
        self, kind: str, text: str, start: int, end: int, line: int, col: int, first: bool
    ):
        self.kind = kind
        self.text = text
        self.start = start
        self.end = end
        self.line = line
        self.col = col
        self.first = first


def _comment_end(text: str, pos: int) -> int:
    depth = 0
    for m in _COMMENT_DELIM.finditer(text, pos):
        if m.group() == "/-":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end()
    return len(text)


def tokenize(text: str, line_starts: list[int]) -> list[Tok]:
    """Split Lean source into tokens, dropping comments but keeping `/-- doc -/` comments."""
    toks: list[Tok] = []
    pos = 0
    n = len(text)
    last_line = -1
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        kind = m.lastgroup
        end = m.end()
        if kind == "ws" or kind == "lc":
            pos = end
            continue
        if kind == "bc":
            end = _comment_end(text, pos)
            if not text.startswith("/--", pos) or text.startswith("/--/", pos):
                pos = end
                continue
            kind = "doc"
        line = bisect_right(line_starts, pos) - 1
        toks.append(
            Tok(kind, text[pos:end], pos, end, line, pos - line_starts[line], line != last_line)
        )
        last_line = bisect_right(line_starts, end - 1) - 1 if end > pos else line
        pos = end
    return toks


def line_starts_of(text: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


_TOKEN_CACHE: dict[str, list[Tok]] = {}


def toks_of(text: str) -> list[Tok]:
    """Tokens of a short expression text (goal targets, hypotheses), cached."""
    toks = _TOKEN_CACHE.get(text)
    if toks is None:
        if len(_TOKEN_CACHE) > 20000:
            _TOKEN_CACHE.clear()
        toks = tokenize(text, line_starts_of(text))
        _TOKEN_CACHE[text] = toks
    return toks


class Source:
    """A command text with its tokens and a map from offsets to REPL positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = line_starts_of(text)
        self.toks = tokenize(text, self.line_starts)

    def pos(self, offset: int) -> dict:
        line = bisect_right(self.line_starts, offset) - 1
        return {"line": line + 1, "column": offset - self.line_starts[line]}

    def slice(self, toks: list[Tok]) -> str:
        return self.text[toks[0].start : toks[-1].end] if toks else ""


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of `text` (keeps long token tables readable)."""
    return frozenset(text.split())


# ---------------------------------------------------------------------------------------------
# Pretty printing of expressions (Lean normalises spacing and a few notations)
# ---------------------------------------------------------------------------------------------

_BINOPS = words(
    """+ - * / % ^ = ≠ < > ≤ ≥ <= >= == != ∧ ∨ → ↔ -> <-> ∣ ∘ × ++ :: && || ∈ ∉ ⊆ ⊂ ∩ ∪ • ≈ ≡ <|>
    >>= |> <| $ => ↦ := : ← <- ⊢ |"""
)
_OPENERS = words("( [ ⟨ { ⦃ @[ #[ .{")
_CLOSERS = words(") ] ⟩ } ⦄")
_GLUE_AFTER = words("¬ ↑ ! @ .") | _OPENERS
_GLUE_BEFORE = words(", ⁻¹") | _CLOSERS
_PP_MAP = {"->": "→", "<=": "≤", ">=": "≥", "<->": "↔", "λ": "fun", "↦": "=>"}
_UNARY_CONTEXT = _BINOPS | _OPENERS | words(", ¬ then else return fun if")
_MATHLIB_NOTATION = {"Nat": "ℕ", "Int": "ℤ", "Rat": "ℚ", "Real": "ℝ", "Complex": "ℂ"}


def _find_depth0(toks: list[Tok], start: int, texts: frozenset | set) -> int:
    depth = 0
    for k in range(start, len(toks)):
        s = toks[k].text
        if depth == 0 and s in texts:
            return k
        if s in _OPENERS:
            depth += 1
        elif s in _CLOSERS:
            depth -= 1
            if depth < 0:
                return -1
    return -1


def pp_toks(toks: list[Tok], mathlib: bool = False) -> str:
    """Print tokens the way Lean's delaborator would space them."""
    out: list[str] = []
    prev: str | None = None
    prev_unary = False
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        s = t.text
        if t.kind == "sym" or s == "λ":
            s = _PP_MAP.get(s, s)
        elif mathlib and t.kind == "id":
            s = _MATHLIB_NOTATION.get(s, s)
        glued = prev is None or s in _GLUE_BEFORE or prev in _GLUE_AFTER or prev_unary
        sep = "" if glued else " "
        if s in ("∀", "∃") and i + 2 < n and toks[i + 1].kind == "id":
            j = i + 1
            while j < n and toks[j].kind == "id":
                j += 1
            if j < n and toks[j].text == ":":
                comma = _find_depth0(toks, j + 1, {","})
                if comma > 0:
                    names = " ".join(toks[k].text for k in range(i + 1, j))
                    if s == "∀":
                        ty = pp_toks(toks[j + 1 : comma], mathlib)
                        out.append(f"{sep}∀ ({names} : {ty}),")
                    else:
                        out.append(f"{sep}∃ {names},")
                    prev, prev_unary = ",", False
                    i = comma + 1
                    continue
        unary = s == "-" and (prev is None or prev in _UNARY_CONTEXT)
        out.append(sep)
        out.append(s)
        prev = s
        prev_unary = unary
        i += 1
    return "".join(out)


_PP_CACHE: dict[tuple[str, bool], str] = {}


def pp(text: str, mathlib: bool = False) -> str:
    key = (text, mathlib)
    res = _PP_CACHE.get(key)
    if res is None:
        if len(_PP_CACHE) > 20000:
            _PP_CACHE.clear()
        res = pp_toks(toks_of(text), mathlib)
        _PP_CACHE[key] = res
    return res


_PREC = {"↔": 20, "→": 25, "∨": 30, "∧": 35}


def split_top(text: str, op: str) -> tuple[str, str] | None:
    """Split `text` at its first top-level `op` (right-associative operators)."""
    toks = toks_of(text)
    if toks and toks[0].text in ("∀", "∃", "fun", "λ"):
        return None
    k = _find_depth0(toks, 0, {op, {"→": "->", "↔": "<->"}.get(op, op)})
    if k <= 0 or k == len(toks) - 1:
        return None
    for lower, prec in _PREC.items():
        if prec < _PREC.get(op, 99) and _find_depth0(toks, 0, {lower}) >= 0:
            return None
    return strip_parens(text[: toks[k].start].strip()), strip_parens(text[toks[k].end :].strip())


def strip_parens(text: str) -> str:
    toks = toks_of(text)
    if len(toks) >= 2 and toks[0].text == "(" and _matching(toks, 0) == len(toks) - 1:
        return text[toks[0].end : toks[-1].start].strip()
    return text


def _matching(toks: list[Tok], k: int) -> int:
    depth = 0
    for j in range(k, len(toks)):
        if toks[j].text in _OPENERS:
            depth += 1
        elif toks[j].text in _CLOSERS:
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def parenthesize(text: str) -> str:
    toks = toks_of(text)
    if len(toks) <= 1 or (toks[0].text in _OPENERS and _matching(toks, 0) == len(toks) - 1):
        return text
    return f"({text})"


def negate(text: str) -> str:
    toks = toks_of(text)
    if any(t.text in _PREC or t.text in ("->", "<->") for t in toks):
        return f"¬({text})"
    return "¬" + text


_TIGHT = words("* / % ^ - + ∣ ++ ::")


def _needs_parens(toks: list[Tok], first: int, last: int) -> bool:
    """Would a compound term replacing toks[first..last] need parentheses there?"""
    before = toks[first - 1].text if first > 0 else None
    after = toks[last + 1].text if last + 1 < len(toks) else None
    return (
        before in _TIGHT
        or after in (_TIGHT - {"+", "-"})
        or (
            before is not None
            and before not in _BINOPS
            and before not in _OPENERS
            and before != ","
        )
        or (after is not None and after not in _BINOPS and after not in _GLUE_BEFORE)
    )


def substitute(text: str, name: str, replacement: str) -> str:
    """Replace the identifier `name` by `replacement`, adding parentheses where Lean would."""
    toks = toks_of(text)
    compound = len(toks_of(replacement)) > 1
    parts: list[str] = []
    last = 0
    for k, t in enumerate(toks):
        if t.text != name or t.kind not in ("id", "num"):
            continue
        rep = replacement
        if compound and _needs_parens(toks, k, k):
            rep = f"({replacement})"
        parts.append(text[last : t.start])
        parts.append(rep)
        last = t.end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def replace_seq(text: str, old: str, new: str) -> str | None:
    """Replace the token sequence `old` in `text` by `new`; None when absent."""
    toks = toks_of(text)
    pattern = [t.text for t in toks_of(old)]
    if not pattern:
        return None
    m = len(pattern)
    compound = len(toks_of(new)) > 1
    parts: list[str] = []
    last = 0
    k = 0
    found = False
    while k <= len(toks) - m:
        if all(toks[k + j].text == pattern[j] for j in range(m)):
            parts.append(text[last : toks[k].start])
            wrap = compound and _needs_parens(toks, k, k + m - 1)
            parts.append(f"({new})" if wrap else new)
            last = toks[k + m - 1].end
            k += m
            found = True
        else:
            k += 1
    if not found:
        return None
    parts.append(text[last:])
    return pp("".join(parts))


# ---------------------------------------------------------------------------------------------
# Goals, environments, proof states
# ---------------------------------------------------------------------------------------------


class Goal:
    """A tactic goal: optional case tag, hypotheses (name, type) and a target."""

    __slots__ = ("tag", "hyps", "target")

    def __init__(self, target: str, hyps: tuple = (), tag: str | None = None) -> None:
        self.target = target
        self.hyps = tuple(hyps)
        self.tag = tag

    def text(self) -> str:
        lines = []
        if self.tag:
            lines.append("case " + self.tag)
        i = 0
        hyps = self.hyps
        while i < len(hyps):
            names = [hyps[i][0]]
            j = i + 1
            while j < len(hyps) and hyps[j][1] == hyps[i][1] and ":=" not in hyps[i][1]:
                names.append(hyps[j][0])
                j += 1
            lines.append(" ".join(names) + " : " + hyps[i][1])
            i = j
        lines.append("⊢ " + self.target)
        return "\n".join(lines)

    def hyp(self, name: str) -> str | None:
        for n, ty in reversed(self.hyps):
            if n == name:
                return ty
        return None

    def but(
        self,
        target: str | None = None,
        add: tuple = (),
        tag: object = False,
        drop: str | None = None,
    ) -> Goal:
        hyps = self.hyps if drop is None else tuple(h for h in self.hyps if h[0] != drop)
        return Goal(
            self.target if target is None else target,
            hyps + tuple(add),
            self.tag if tag is False else tag,
        )

    def to_json(self) -> list:
        return [self.tag, [list(h) for h in self.hyps], self.target]

    @staticmethod
    def from_json(data: list) -> Goal:
        return Goal(data[2], tuple(tuple(h) for h in data[1]), data[0])


def goals_text(goals: list[Goal]) -> str:
    return "\n\n".join(g.text() for g in goals)


class Env:
    """An environment: declarations, imports and the scope stack (namespaces, opens, ...).

    Every command makes a new environment, so a notebook of N cells makes N of them.
    Declarations live in a `base` dict shared by all descendants and never changed in place,
    plus a small `overlay` copied on write and merged into a new base every MERGE_AT
    declarations: memory stays near-linear in N and lookups stay O(1).

    `bare` marks Lean's fallback after an import it could not find: an empty environment
    without even Init, where the built-in names (Nat, True, rfl, ...) are unknown.
    """

    __slots__ = ("base", "overlay", "imports", "scopes", "shared", "bare")
    MERGE_AT = 64

    def __init__(
        self,
        base: dict | None = None,
        overlay: dict | None = None,
        imports: tuple = (),
        scopes: list | None = None,
        bare: bool = False,
    ) -> None:
        self.base = {} if base is None else base
        self.overlay = {} if overlay is None else overlay
        self.imports = tuple(imports)
        self.scopes = scopes or [_scope("root", "", "")]
        self.shared = False
        self.bare = bare

    def derive(self) -> Env:
        env = Env(self.base, self.overlay, self.imports, [dict(s) for s in self.scopes], self.bare)
        env.shared = True
        return env

    def add(self, name: str, decl: dict) -> None:
        if self.shared:
            self.overlay = dict(self.overlay)
            self.shared = False
        self.overlay[name] = decl
        if len(self.overlay) >= self.MERGE_AT:
            self.base = {**self.base, **self.overlay}
            self.overlay = {}

    def get(self, name: str) -> dict | None:
        decl = self.overlay.get(name)
        return decl if decl is not None else self.base.get(name)

    def names(self) -> Iterator[str]:
        return chain(self.overlay, self.base)

    @property
    def scope(self) -> dict:
        return self.scopes[-1]

    @property
    def mathlib(self) -> bool:
        return any(m == "Mathlib" or m.startswith("Mathlib.") for m in self.imports)

    def qualify(self, name: str) -> str:
        if name.startswith("_root_."):
            return name[7:]
        ns = self.scope["ns"]
        return f"{ns}.{name}" if ns else name

    def resolve(self, name: str) -> tuple[str, dict] | None:
        """Find a declaration the way Lean resolves a name in the current scope."""
        get = self.get
        if name.startswith("_root_."):
            name = name[7:]
        ns = self.scope["ns"]
        while ns:
            full = f"{ns}.{name}"
            decl = get(full)
            if decl is not None:
                return full, decl
            ns = ns.rpartition(".")[0]
        decl = get(name)
        if decl is not None:
            return name, decl
        for opened in self.scope["opens"]:
            full = f"{opened}.{name}"
            decl = get(full)
            if decl is not None:
                return full, decl
            if full in BUILTINS and not self.bare:
                return full, BUILTINS[full]
        if name in BUILTINS and not self.bare:
            return name, BUILTINS[name]
        return None

    def is_namespace(self, name: str) -> bool:
        prefix = name + "."
        if self.bare:
            return any(d.startswith(prefix) for d in self.names())
        return (
            any(d.startswith(prefix) for d in self.names())
            or name in KNOWN_NAMESPACES
            or any(d.startswith(prefix) for d in BUILTINS)
            or any(m not in ("Init",) for m in self.imports)
        )

    def to_json(self) -> dict:
        decls = {**self.base, **self.overlay}
        data = {"decls": decls, "imports": list(self.imports), "scopes": self.scopes}
        if self.bare:
            data["bare"] = True
        return data

    @staticmethod
    def from_json(data: dict) -> Env:
        return Env(
            dict(data["decls"]),
            None,
            tuple(data["imports"]),
            data["scopes"],
            bool(data.get("bare")),
        )


def _scope(kind: str, name: str, ns: str, parent: dict | None = None) -> dict:
    return {
        "kind": kind,
        "name": name,
        "ns": ns,
        "opens": list(parent["opens"]) if parent else [],
        "vars": list(parent["vars"]) if parent else [],
        "opts": dict(parent["opts"]) if parent else {},
        "levels": list(parent["levels"]) if parent else [],
    }


SELF_REFERENCE_STATUS = (
    "Error: kernel type check failed: (kernel) declaration has free variables '[anonymous]', "
    "expression: \n  _fvar.2"
)


class ProofState:
    """A recorded proof state: its goals, whether its proof uses sorry, and its env.

    `self_ref` names the declaration the state was cut from: using it in a proof makes the
    kernel reject the proof (the REPL's guard against circular proofs), and `error` says so.
    """

    __slots__ = ("goals", "sorry", "env", "self_ref", "error")

    def __init__(
        self, goals: list[Goal], sorry: bool, env: Env, self_ref: str | None = None
    ) -> None:
        self.goals = list(goals)
        self.sorry = sorry
        self.env = env
        self.self_ref = self_ref
        self.error: str | None = None

    def status(self) -> str:
        if self.goals:
            return "Incomplete: open goals remain"
        if self.error:
            return self.error
        return "Incomplete: contains sorry" if self.sorry else "Completed"


# ---------------------------------------------------------------------------------------------
# Built-in knowledge (a sliver of Lean core, enough for #check/#print/docstrings)
# ---------------------------------------------------------------------------------------------


def _builtin(kind: str, sig: str, doc: str | None = None, printed: str | None = None) -> dict:
    return {"kind": kind, "builtin": True, "sig": sig, "doc": doc, "print": printed}


BUILTINS: dict[str, dict] = {
    "Nat": _builtin("inductive", " : Type", "The natural numbers 0, 1, 2, ... (fake builtin)."),
    "Int": _builtin("inductive", " : Type", "The integers ..., -1, 0, 1, ... (fake builtin)."),
    "String": _builtin("structure", " : Type", "Unicode strings (fake builtin)."),
    "Bool": _builtin("inductive", " : Type", "The booleans `true` and `false` (fake builtin)."),
    "Prop": _builtin("def", " : Type", None),
    "True": _builtin("inductive", " : Prop", "The true proposition (fake builtin)."),
    "False": _builtin("inductive", " : Prop", "The false proposition (fake builtin)."),
    "List": _builtin("inductive", ".{u} (α : Type u) : Type u", "Linked lists (fake builtin)."),
    "List.cons": _builtin(
        "constructor",
        " {α : Type u} (head : α) (tail : List α) : List α",
        "Adds an element at the front of a list (fake builtin).",
        "constructor List.cons.{u} : {α : Type u} → α → List α → List α",
    ),
    "List.nil": _builtin("constructor", " {α : Type u} : List α", "The empty list (fake builtin)."),
    "Nat.succ": _builtin("constructor", " (n : Nat) : Nat", "The successor n + 1 (fake builtin)."),
    "Nat.zero": _builtin("constructor", " : Nat", "Zero (fake builtin)."),
    "Nat.add": _builtin("def", " : Nat → Nat → Nat", "Addition of naturals (fake builtin)."),
    "Nat.mul": _builtin("def", " : Nat → Nat → Nat", "Multiplication (fake builtin)."),
    "Nat.gcd": _builtin("def", " (m n : Nat) : Nat", "Greatest common divisor (fake builtin)."),
    "Nat.add_comm": _builtin("theorem", " (n m : Nat) : n + m = m + n", "Addition commutes."),
    "Nat.mul_comm": _builtin("theorem", " (n m : Nat) : n * m = m * n", "Multiplication commutes."),
    "Nat.add_zero": _builtin("theorem", " (n : Nat) : n + 0 = n", None),
    "Nat.zero_add": _builtin("theorem", " (n : Nat) : 0 + n = n", None),
    "Nat.add_assoc": _builtin("theorem", " (n m k : Nat) : n + m + k = n + (m + k)", None),
    "Nat.le_refl": _builtin("theorem", " (n : Nat) : n ≤ n", None),
    "Int.natAbs": _builtin(
        "def", " (m : Int) : Nat", "Absolute value as a natural (fake builtin)."
    ),
    "rfl": _builtin("theorem", ".{u} {α : Sort u} {a : α} : a = a", "Reflexivity of equality."),
    "id": _builtin("def", ".{u} {α : Sort u} (a : α) : α", "The identity function."),
    "trivial": _builtin("theorem", " : True", None),
    "And.intro": _builtin("constructor", " {a b : Prop} (left : a) (right : b) : a ∧ b", None),
    "Or.inl": _builtin("constructor", " {a b : Prop} (h : a) : a ∨ b", None),
    "Or.inr": _builtin("constructor", " {a b : Prop} (h : b) : a ∨ b", None),
    "Iff.intro": _builtin("constructor", " {a b : Prop} (mp : a → b) (mpr : b → a) : a ↔ b", None),
    "congrArg": _builtin(
        "theorem", " {α β} {a₁ a₂ : α} (f : α → β) (h : a₁ = a₂) : f a₁ = f a₂", None
    ),
    "Eq.trans": _builtin("theorem", " {α} {a b c : α} (h₁ : a = b) (h₂ : b = c) : a = c", None),
    "Eq.symm": _builtin("theorem", " {α} {a b : α} (h : a = b) : b = a", None),
}

KNOWN_NAMESPACES = words(
    """Nat Int List String Bool Array Option Eq And Or Iff Not Function Classical Decidable Prod
    Sum Fin IO Lean Std Char Float Unit HEq Exists Subtype Sigma Id"""
)

BUILTIN_IDENTS = words(
    """rfl trivial id absurd congrArg congrFun congr funext propext True False Nat Int String Bool
    Prop Type Sort List Array Option Unit Char Float Fin Eq Ne And Or Not Iff Exists HEq true
    false none some not decide default inferInstance Function Subtype Prod Sum max min toString
    repr pure Id Decidable Classical cast Empty PUnit Sigma outParam Inhabited Nonempty
    Membership Add Mul Sub Div Neg HAdd HMul HSub HDiv OfNat LT LE Max Min Repr ToString BEq
    Hashable Ord Ordering Monad IO println dbgTrace panic this sorry ite dite Function.comp Quot
    Quotient Setoid Eq.refl Eq.subst Eq.mpr Eq.mp id_eq And.intro Or.inl Or.inr Iff.intro
    Exists.intro Nat.zero Nat.succ show_term instOfNatNat"""
)

MATHLIB_IDENTS = words(
    """ℕ ℤ ℚ ℝ ℂ Real Rat Complex Finset Set Multiset Polynomial mul_comm add_comm mul_assoc
    add_assoc le_refl le_trans lt_irrefl le_antisymm sq sq_nonneg abs mul_pos add_pos two_mul
    mul_one one_mul zero_add add_zero mul_zero zero_mul pow_two sub_self neg_neg le_of_lt
    lt_of_le_of_lt div_self mul_le_mul add_le_add Nat.Prime Prime Even Odd dvd_refl pow_succ exp
    log sqrt π Real.sqrt Real.pi norm_num le_div_iff lt_div_iff div_le_iff mul_self_nonneg
    abs_nonneg"""
)

KEYWORDS = words(
    """fun λ let have show from by if then else match with do return at only using in sorry Type
    Sort Prop calc where deriving instance this suffices obtain for unless mut"""
)

_BINDING_TOKENS = words(
    "fun λ let have match => ∀ ∃ Σ ∑ ∏ ⋃ ⋂ do for · ← where | show calc by ∫ ⨆ ⨅ ∃! obtain"
)  # noqa: SIM905

KNOWN_MODULE_ROOTS = words(
    """Init Lean Std Lake Mathlib Batteries Aesop Qq ProofWidgets Plausible LeanSearchClient
    ImportGraph REPL Cli"""
)

_BOOL_OPTION = "bool"
_NAT_OPTION = "nat"
KNOWN_OPTIONS = {
    "pp.all": _BOOL_OPTION,
    "pp.universes": _BOOL_OPTION,
    "pp.numericTypes": _BOOL_OPTION,
    "pp.explicit": _BOOL_OPTION,
    "pp.proofs": _BOOL_OPTION,
    "pp.notation": _BOOL_OPTION,
    "pp.fieldNotation": _BOOL_OPTION,
    "pp.funBinderTypes": _BOOL_OPTION,
    "pp.piBinderTypes": _BOOL_OPTION,
    "pp.mvars": _BOOL_OPTION,
    "pp.fvars.anonymous": _BOOL_OPTION,
    "pp.coercions": _BOOL_OPTION,
    "pp.natLit": _BOOL_OPTION,
    "pp.instances": _BOOL_OPTION,
    "pp.instanceTypes": _BOOL_OPTION,
    "pp.fullNames": _BOOL_OPTION,
    "pp.privateNames": _BOOL_OPTION,
    "pp.beta": _BOOL_OPTION,
    "pp.letVarTypes": _BOOL_OPTION,
    "pp.unicode.fun": _BOOL_OPTION,
    "pp.oneline": _BOOL_OPTION,
    "pp.match": _BOOL_OPTION,
    "pp.structureInstances": _BOOL_OPTION,
    "pp.deepTerms": _BOOL_OPTION,
    "pp.maxSteps": _NAT_OPTION,
    "pp.proofs.withType": _BOOL_OPTION,
    "maxHeartbeats": _NAT_OPTION,
    "maxRecDepth": _NAT_OPTION,
    "synthInstance.maxHeartbeats": _NAT_OPTION,
    "synthInstance.maxSize": _NAT_OPTION,
    "autoImplicit": _BOOL_OPTION,
    "relaxedAutoImplicit": _BOOL_OPTION,
    "diagnostics": _BOOL_OPTION,
    "profiler": _BOOL_OPTION,
    "tactic.hygienic": _BOOL_OPTION,
    "warningAsError": _BOOL_OPTION,
    "Elab.async": _BOOL_OPTION,
    "debug.moduleNameAtTimeout": _BOOL_OPTION,
    "exponentiation.threshold": _NAT_OPTION,
    "debug.skipKernelTC": _BOOL_OPTION,
    "compiler.extract_closed": _BOOL_OPTION,
}


def option_kind(name: str) -> str | None:
    kind = KNOWN_OPTIONS.get(name)
    if kind is None and (name.startswith("linter.") or name.startswith("trace.")):
        kind = _BOOL_OPTION
    return kind


# ---------------------------------------------------------------------------------------------
# Axioms: what `#print axioms` reports
# ---------------------------------------------------------------------------------------------

STANDARD_AXIOMS = ("propext", "Classical.choice", "Quot.sound")
_PROPEXT = ("propext",)

#: Axioms of Lean core constants, as `#print axioms` lists them; any other `Classical.*` name
#: counts as the standard three (they are proved through `Classical.choice`), other built-in
#: names as none.
BUILTIN_AXIOMS: dict[str, tuple[str, ...]] = {
    "propext": ("propext",),
    "Quot.sound": ("Quot.sound",),
    "funext": ("Quot.sound",),
    "Classical.choice": ("Classical.choice",),
    "Classical.choose": ("Classical.choice",),
    "Classical.propDecidable": ("Classical.choice",),
    "Classical.em": STANDARD_AXIOMS,
    "Classical.byContradiction": STANDARD_AXIOMS,
    "Classical.byCases": STANDARD_AXIOMS,
    "Classical.not_not": STANDARD_AXIOMS,
    "sorryAx": ("sorryAx",),
    "Lean.ofReduceBool": ("Lean.ofReduceBool",),
    "Lean.trustCompiler": ("Lean.trustCompiler",),
}

#: Axioms a tactic's proof term uses. In real Lean that depends on the goal and the lemmas the
#: tactic finds; this is the fake's simple, plausible model: rewriting and arithmetic deciders
#: use `propext`, classical reasoning the standard three; the others (rfl, exact, intro,
#: apply, decide, trivial, rw, cases, induction, ...) none.
TACTIC_AXIOMS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        words(
            """simp simp_all simpa simp_arith simp? simp_all? omega norm_num norm_num1 linarith
            nlinarith linarith! nlinarith! positivity field_simp simp_rw push_cast norm_cast
            exact_mod_cast ring ring_nf"""
        ),
        _PROPEXT,
    ),
    **dict.fromkeys(
        words(
            """by_contra by_contra! by_cases push_neg contrapose contrapose! tauto aesop grind
            classical bv_decide"""
        ),
        STANDARD_AXIOMS,
    ),
}

#: Tactics that evaluate natively, by the name Lean puts in their axioms (`decide +native` is
#: recognised separately).
NATIVE_TACTICS = words("native_decide bv_decide")

#: What `native_decide` leaves, by Lean release (from Lean's sources and changelog):
#: before 4.3.0 `Lean.ofReduceBool` alone; from 4.3.0 (PR #2654, Oct 2023) also
#: `Lean.trustCompiler`, which the body of `Lean.reduceBool` mentions (Lean's test
#: tests/lean/run/collectAxioms.lean: `[Lean.ofReduceBool, Lean.trustCompiler]`); from 4.29.0
#: (PR #12217, RFC #12216: `Lean.Meta.nativeEqTrue` in src/Lean/Meta/Native.lean) neither, but
#: one fresh axiom per native computation, `<decl>._native.<tactic>.ax_<i>` (seen in the wild:
#: `foo._native.native_decide.ax_1_1`; the fake numbers further ones `ax_1_2`, ...).
NATIVE_AXIOM_ERAS = (
    ((4, 3), ("Lean.ofReduceBool",)),
    ((4, 29), ("Lean.ofReduceBool", "Lean.trustCompiler")),
)


def name_order(name: str) -> tuple[int, list[str]]:
    """Sort key of Lean's `Name.lt` (`Name.cmp` compares prefixes first): a name with fewer
    components comes first, names of one length compare component by component. So
    `[propext, sorryAx, Classical.choice, Quot.sound, foo._native.native_decide.ax_1_1]`.

    `#print axioms` sorts by it since Lean's fix of issue #4415 (mid 2024, Lean ~4.10); before,
    it printed the collection order. The fake plays the 4.3x era and always sorts.
    """
    parts = name.split(".")
    return len(parts), parts


def native_axioms(decl_name: str, tactics: list[str]) -> list[str]:
    """The axioms the native evaluations `tactics` (in order) of `decl_name` leave."""
    if not tactics:
        return []
    version = tuple(int(n) for n in re.findall(r"\d+", LEAN_VERSION)[:2]) if LEAN_VERSION else ()
    for before, axioms in NATIVE_AXIOM_ERAS:
        if version and version < before:
            return list(axioms)
    seen: dict[str, int] = {}
    names = []
    for tactic in tactics:
        seen[tactic] = seen.get(tactic, 0) + 1
        names.append(f"{decl_name}._native.{tactic}.ax_1_{seen[tactic]}")
    return names


def builtin_axioms(full: str) -> list[str]:
    """Axioms of a Lean core constant."""
    axioms = BUILTIN_AXIOMS.get(full)
    if axioms is None and full.startswith("Classical."):
        axioms = STANDARD_AXIOMS
    return sorted(axioms or (), key=name_order)


#: Names `#print axioms` knows without a declaration in the env (core, and with Mathlib).
_CORE_CONSTANTS = frozenset(BUILTIN_AXIOMS) | BUILTIN_IDENTS
_MATHLIB_CONSTANTS = _CORE_CONSTANTS | MATHLIB_IDENTS


def decl_axioms(decl: dict) -> list[str]:
    """Axioms of a declaration of the env (an env pickled before they were kept: its sorry)."""
    if "axioms" in decl:
        return decl["axioms"]
    return ["sorryAx"] if decl.get("sorry") else []


# ---------------------------------------------------------------------------------------------
# Expressions: a Pratt parser, type inference and evaluation of the computable fragment
# ---------------------------------------------------------------------------------------------


class Unsupported(Exception):
    """The expression is outside what the fake can evaluate."""


class EvalFailure(Exception):
    """Evaluation failed the way Lean's would (the message is Lean's)."""


_INFIX = {
    "||": (30, False), "∨": (30, False), "&&": (35, False), "∧": (35, False),
    "=": (50, False), "==": (50, False), "!=": (50, False), "≠": (50, False), "<": (50, False),
    ">": (50, False), "≤": (50, False), "≥": (50, False), "<=": (50, False), ">=": (50, False),
    "∣": (50, False), "++": (65, True), "::": (67, True), "+": (65, False), "-": (65, False),
    "*": (70, False), "/": (70, False), "%": (70, False), "^": (75, True),
    "→": (25, True), "->": (25, True), "↔": (20, False), "<->": (20, False),
}  # fmt: skip
_APP = 1024
_PROP_OPS = words("= ≠ < > ≤ ≥ <= >= ∣ ∧ ∨ → -> ↔ <->")
_BOOL_OPS = words("== != && ||")
_NUM_RANK = {"Nat": 0, "ℕ": 0, "Int": 1, "ℤ": 1, "Rat": 2, "ℚ": 2, "Real": 3, "ℝ": 3}


class ExprParser:
    """Parses the tokens of a term into tuples like ("bin", op, lhs, rhs)."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def parse_all(self) -> tuple:
        if not self.toks:
            raise Unsupported
        e = self.expr(0)
        if self.i != len(self.toks):
            raise Unsupported
        return e

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, text: str | None = None) -> Tok:
        t = self.peek()
        if t is None or (text is not None and t.text != text):
            raise Unsupported
        self.i += 1
        return t

    def starts_atom(self, t: Tok) -> bool:
        if t.kind in ("num", "str", "chr"):
            return True
        if t.kind == "id":
            return t.text not in KEYWORDS
        return t.text in ("(", "[", "⟨")

    def expr(self, rbp: int) -> tuple:
        t = self.take()
        if t.text == "-":
            left = ("neg", self.expr(75))
        elif t.text == "¬":
            left = ("not", self.expr(40))
        elif t.text == "!":
            left = ("bnot", self.expr(_APP))
        elif t.text == "if":
            cond = self.expr(0)
            self.take("then")
            a = self.expr(0)
            self.take("else")
            left = ("if", cond, a, self.expr(0))
        else:
            left = self.atom(t)
        while True:
            t = self.peek()
            if t is None:
                break
            info = _INFIX.get(t.text) if t.kind == "sym" else None
            if info is not None:
                lbp, right = info
                if lbp <= rbp:
                    break
                self.i += 1
                left = ("bin", t.text, left, self.expr(lbp - 1 if right else lbp))
            elif self.starts_atom(t) and rbp < _APP and left[0] in ("var", "app"):
                self.i += 1
                arg = self.atom(t)
                left = (
                    ("app", left[1], left[2] + [arg]) if left[0] == "app" else ("app", left, [arg])
                )
            else:
                break
        return left

    def atom(self, t: Tok) -> tuple:
        if t.kind == "num":
            if "." in t.text:
                raise Unsupported
            return ("num", int(t.text))
        if t.kind == "str":
            try:
                return ("str", json.loads(t.text))
            except ValueError as exc:
                raise Unsupported from exc
        if t.kind == "id" and t.text not in KEYWORDS:
            if t.text in ("true", "false"):
                return ("bool", t.text == "true")
            return ("var", t.text, t)
        if t.text == "(":
            inner = self.expr(0)
            nxt = self.take()
            if nxt.text == ")":
                return inner
            if nxt.text == ":":
                start = self.i
                depth = 0
                while True:
                    c = self.take()
                    if c.text in _OPENERS:
                        depth += 1
                    elif c.text in _CLOSERS:
                        if depth == 0:
                            break
                        depth -= 1
                return ("asc", inner, pp_toks(self.toks[start : self.i - 1]))
            raise Unsupported
        if t.text == "[":
            items = []
            if self.peek() is not None and self.peek().text == "]":
                self.i += 1
                return ("list", items)
            while True:
                items.append(self.expr(0))
                c = self.take()
                if c.text == "]":
                    return ("list", items)
                if c.text != ",":
                    raise Unsupported
        raise Unsupported


def parse_expr(toks: list[Tok]) -> tuple:
    return ExprParser(toks).parse_all()


def _decl_params(decl: dict) -> list[tuple[str, str]]:
    params = []
    for names, ty, bracket in decl.get("binders", ()):
        if bracket == "(":
            params.extend((n, ty) for n in names)
    return params


def infer_type(e: tuple, env: Env, locals_: dict[str, str]) -> str | None:
    """The type Lean would give `e`, for the simple fragment; None when unknown."""
    kind = e[0]
    if kind == "num":
        return "Nat"
    if kind == "str":
        return "String"
    if kind == "bool":
        return "Bool"
    if kind in ("not",):
        return "Prop"
    if kind == "bnot":
        return "Bool"
    if kind == "neg":
        inner = infer_type(e[1], env, locals_)
        return "Int" if inner in (None, "Nat") else inner
    if kind == "asc":
        return e[2]
    if kind == "if":
        return infer_type(e[2], env, locals_) or infer_type(e[3], env, locals_)
    if kind == "list":
        inner = infer_type(e[1][0], env, locals_) if e[1] else None
        return f"List {parenthesize(inner)}" if inner else None
    if kind == "bin":
        op = e[1]
        if op in _PROP_OPS:
            return "Prop"
        if op in _BOOL_OPS:
            return "Bool"
        if op == "::":
            t = infer_type(e[3], env, locals_)
            return t
        a = infer_type(e[2], env, locals_)
        b = infer_type(e[3], env, locals_)
        if op == "^":
            return a
        if a in _NUM_RANK and b in _NUM_RANK:
            return a if _NUM_RANK[a] >= _NUM_RANK[b] else b
        return a or b
    if kind == "var":
        name = e[1]
        if name in locals_:
            return locals_[name]
        if name in ("True", "False"):
            return "Prop"
        if name in ("Nat", "Int", "String", "Bool", "Prop"):
            return "Type"
        found = env.resolve(name)
        if found is None:
            return None
        decl = found[1]
        if decl.get("builtin"):
            sig = decl["sig"]
            return sig[3:] if sig.startswith(" : ") else None
        if _decl_params(decl) or decl.get("eqns"):
            return None
        return decl.get("type")
    if kind == "app":
        head = e[1]
        if head[0] != "var":
            return None
        found = env.resolve(head[1])
        if found is None or found[1].get("builtin"):
            return "Nat" if head[1] in ("Nat.succ", "Nat.gcd", "Nat.lcm", "Nat.pred") else None
        decl = found[1]
        if decl.get("eqns"):
            ty = decl.get("type") or ""
            return ty.rpartition("→")[2].strip() or None
        return decl.get("type")
    return None


class Evaluator:
    """Evaluates closed terms of the computable fragment (numbers, strings, lists, defs)."""

    def __init__(self, env: Env, nat: bool) -> None:
        self.env = env
        self.nat = nat
        self.memo: dict = {}
        self.steps = 0
        self.parsed: dict = {}

    def run(self, e: tuple, locals_: dict) -> object:
        self.steps += 1
        if self.steps > 200000:
            raise EvalFailure(
                "maximum recursion depth has been reached\n"
                "use `set_option maxRecDepth <num>` to increase limit\n"
                "use `set_option diagnostics true` to get diagnostic information"
            )
        kind = e[0]
        if kind in ("num", "str", "bool"):
            return e[1]
        if kind == "list":
            return [self.run(x, locals_) for x in e[1]]
        if kind == "asc":
            return self.run(e[1], locals_)
        if kind == "neg":
            v = self.run(e[1], locals_)
            if not isinstance(v, int) or isinstance(v, bool):
                raise Unsupported
            return -v
        if kind in ("not", "bnot"):
            return not self.run(e[1], locals_)
        if kind == "if":
            return self.run(e[2] if self.run(e[1], locals_) else e[3], locals_)
        if kind == "bin":
            return self.binary(e[1], self.run(e[2], locals_), self.run(e[3], locals_))
        if kind == "var":
            name = e[1]
            if name in locals_:
                return locals_[name]
            return self.call(name, [])
        if kind == "app":
            if e[1][0] != "var":
                raise Unsupported
            args = [self.run(a, locals_) for a in e[2]]
            if e[1][1] in locals_:
                raise Unsupported
            return self.call(e[1][1], args)
        raise Unsupported

    def binary(self, op: str, a: object, b: object) -> object:
        if op in ("=", "=="):
            return a == b
        if op in ("≠", "!="):
            return a != b
        if op in ("∧", "&&"):
            return bool(a) and bool(b)
        if op in ("∨", "||"):
            return bool(a) or bool(b)
        if op in ("++",):
            if isinstance(a, (str, list)) and type(a) is type(b):
                return a + b
            raise Unsupported
        if op == "::":
            if isinstance(b, list):
                return [a, *b]
            raise Unsupported
        if not (isinstance(a, int) and isinstance(b, int)):
            if isinstance(a, str) and isinstance(b, str) and op in ("<", ">", "≤", "≥"):
                pass
            else:
                raise Unsupported
        if op == "<":
            return a < b
        if op == ">":
            return a > b
        if op in ("≤", "<="):
            return a <= b
        if op in ("≥", ">="):
            return a >= b
        if op == "+":
            return a + b
        if op == "-":
            return max(a - b, 0) if self.nat else a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                return 0
            q = a // b if b > 0 else -(a // -b)
            return q
        if op == "%":
            if b == 0:
                return a
            return a - b * (a // b if b > 0 else -(a // -b))
        if op == "^":
            if b < 0 or b > 100000:
                raise Unsupported
            return a**b
        if op == "∣":
            return b % a == 0 if a else b == 0
        raise Unsupported

    def call(self, name: str, args: list) -> object:
        builtin = _EVAL_BUILTINS.get(name)
        if builtin is not None:
            try:
                return builtin(*args)
            except (TypeError, ValueError) as exc:
                raise Unsupported from exc
        found = self.env.resolve(name)
        if found is None or found[1].get("builtin"):
            raise Unsupported
        full, decl = found
        key = (full, tuple(a if not isinstance(a, list) else tuple(a) for a in args))
        if key in self.memo:
            return self.memo[key]
        if decl.get("eqns"):
            value = self.call_eqns(full, decl, args)
        else:
            params = _decl_params(decl)
            if len(params) != len(args) or decl.get("value") is None:
                raise Unsupported
            body = self.parse_cached(full, decl["value"])
            value = self.run(body, {p[0]: v for p, v in zip(params, args, strict=True)})
        self.memo[key] = value
        return value

    def parse_cached(self, key: object, text: str) -> tuple:
        e = self.parsed.get((key, text))
        if e is None:
            e = parse_expr(toks_of(text))
            self.parsed[(key, text)] = e
        return e

    def call_eqns(self, full: str, decl: dict, args: list) -> object:
        params = _decl_params(decl)
        fixed = {p[0]: v for p, v in zip(params, args, strict=False)}
        rest = args[len(params) :]
        for pats, rhs in decl["eqns"]:
            if len(pats) != len(rest):
                continue
            bound = dict(fixed)
            if all(_match_pattern(toks_of(p), v, bound) for p, v in zip(pats, rest, strict=True)):
                return self.run(self.parse_cached(full, rhs), bound)
        raise Unsupported


def _match_pattern(toks: list[Tok], value: object, bound: dict) -> bool:
    texts = [t.text for t in toks]
    if texts == ["_"]:
        return True
    if len(texts) == 1 and toks[0].kind == "num":
        return value == int(texts[0])
    if len(texts) == 1 and toks[0].kind == "str":
        return value == json.loads(texts[0])
    if texts in (["Nat.zero"], [".", "zero"], ["zero"]):
        return value == 0
    if texts in (["[", "]"], ["List.nil"]):
        return value == []
    if len(texts) == 1 and toks[0].kind == "id":
        if texts[0] in ("true", "false"):
            return value == (texts[0] == "true")
        bound[texts[0]] = value
        return True
    if len(texts) == 3 and texts[1] == "+" and toks[2].kind == "num" and toks[0].kind == "id":
        k = int(texts[2])
        if isinstance(value, int) and value >= k:
            bound[texts[0]] = value - k
            return True
        return False
    if texts[:1] in (["Nat.succ"], ["succ"]) or texts[:2] == [".", "succ"]:
        inner = toks[2:] if texts[0] == "." else toks[1:]
        if isinstance(value, int) and value >= 1:
            return _match_pattern(inner, value - 1, bound)
        return False
    if len(texts) == 3 and texts[1] == "::":
        if isinstance(value, list) and value:
            return _match_pattern(toks[:1], value[0], bound) and _match_pattern(
                toks[2:], value[1:], bound
            )
        return False
    if texts and texts[0] == "(" and texts[-1] == ")":
        return _match_pattern(toks[1:-1], value, bound)
    raise Unsupported


_EVAL_BUILTINS = {
    "Nat.succ": lambda n: n + 1,
    "Nat.pred": lambda n: max(n - 1, 0),
    "Nat.gcd": math.gcd,
    "Nat.lcm": math.lcm,
    "Nat.min": min,
    "Nat.max": max,
    "min": min,
    "max": max,
    "String.length": len,
    "List.length": len,
    "List.sum": sum,
    "List.reverse": lambda xs: list(reversed(xs)),
    "toString": lambda v: lean_repr(v) if not isinstance(v, str) else v,
    "String.append": lambda a, b: a + b,
}


def lean_repr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(lean_repr(v) for v in value) + "]"
    return str(value)


def evaluate_prop(text: str, env: Env) -> bool | None:
    """Truth value of a closed decidable proposition like `2 + 2 = 4`; None when unknown."""
    toks = toks_of(text)
    if not toks:
        return None
    if len(toks) == 1:
        return {"True": True, "False": False}.get(toks[0].text)
    try:
        e = parse_expr(toks)
        if e[0] != "bin" or e[1] not in _PROP_OPS:
            return None
        operand = infer_type(e[2], env, {}) or infer_type(e[3], env, {})
        value = Evaluator(env, nat=operand in (None, "Nat", "ℕ")).run(e, {})
    except (Unsupported, EvalFailure, RecursionError):
        return None
    return value if isinstance(value, bool) else None


def closed_type(decl: dict) -> str:
    """A declaration's type closed over its binders, as `#check @NAME` shows it."""
    ty = decl.get("type") or "?"
    groups = []
    for names, bty, bracket, *_ in decl.get("binders", ()):
        close = {"(": ")", "{": "}", "[": "]", "⦃": "⦄", "{{": "}}"}[bracket]
        inner = bty if names == ["inst✝"] else f"{' '.join(names)} : {bty}"
        groups.append(f"{bracket}{inner}{close}")
    return f"∀ {' '.join(groups)}, {ty}" if groups else ty


def split_foralls(text: str) -> tuple[list[tuple[str, str]], str]:
    """`∀ (a b : T) {c : U}, body` -> ([(a, T), (b, T), (c, U)], body); nested ∀s too."""
    binders: list[tuple[str, str]] = []
    toks = toks_of(text)
    while toks and toks[0].text == "∀":
        comma = _find_depth0(toks, 1, {","})
        if comma < 0:
            break
        part = toks[1:comma]
        if part and part[0].text in ("(", "{", "[", "⦃"):
            groups, _ = parse_binders(part, 0, len(part))
            for b in groups:
                binders.extend((n, pp_toks(b.type_toks)) for n in b.names)
        else:
            colon = _find_depth0(part, 0, {":"})
            ty = pp_toks(part[colon + 1 :]) if colon >= 0 else "?"
            binders.extend((t.text, ty) for t in part[: max(colon, 0)] if t.kind == "id")
        text = text[toks[comma].end :].strip()
        toks = toks_of(text)
    return binders, text


_TIGHTER_THAN_ADD = words("* / % ^ . ∣")


def _reduce_tokens(toks: list[Tok]) -> list[Tok]:
    """One pass of the reductions `defeq_form` models: `(atom)` -> `atom`, `e + 0` and
    `e - 0` -> `e` (`Nat.add`/`Nat.sub` unfold on a literal 0)."""
    out: list[Tok] = []
    k = 0
    while k < len(toks):
        t = toks[k]
        if t.text == "(" and k + 2 < len(toks) and toks[k + 2].text == ")":
            out.append(toks[k + 1])
            k += 3
            continue
        nxt = toks[k + 2] if k + 2 < len(toks) else None
        if (
            t.text in ("+", "-")
            and k + 1 < len(toks)
            and toks[k + 1].text == "0"
            and out
            and (out[-1].kind in ("id", "num") or out[-1].text in _CLOSERS)
            and (
                nxt is None
                or (
                    nxt.text not in _TIGHTER_THAN_ADD
                    and nxt.kind not in ("id", "num")
                    and nxt.text not in _OPENERS
                )
            )
        ):
            k += 2
            continue
        out.append(t)
        k += 1
    return out


def defeq_form(text: str, env: Env) -> str:
    """`text` normalised up to what Lean's `isDefEq` sees through and the fake can model:
    binder names and grouping, spacing, parentheses around atoms, `e + 0` / `e - 0`, closed
    arithmetic (Nat literals reduce). Two types with the same form are definitionally equal;
    other definitional equalities (unfolding user definitions, ...) are not modelled."""
    binders, body = split_foralls(pp(text))
    renamed = []
    for i, (name, ty) in enumerate(binders):
        fresh = f"x✝{i}"
        renamed.append(ty)
        body = substitute(body, name, fresh)
        binders[i + 1 :] = [(n, substitute(t, name, fresh)) for n, t in binders[i + 1 :]]
    toks = toks_of(body)
    while True:
        reduced = _reduce_tokens(toks)
        if len(reduced) == len(toks):
            break
        toks = reduced
    body = pp_toks(toks)
    sides = split_top(body, "=")
    if sides is not None:
        values = [_closed_value(side, env) for side in sides]
        body = " = ".join(
            v if v is not None else side for v, side in zip(values, sides, strict=True)
        )
    return "".join(f"∀ ({ty}), " for ty in renamed) + body


def _closed_value(text: str, env: Env) -> str | None:
    """The value of a closed numeral expression (`2 ^ 10` -> `1024`); None for anything else."""
    toks = toks_of(text)
    if not toks or any(t.kind == "id" for t in toks):
        return None
    try:
        value = Evaluator(env, nat=True).run(parse_expr(toks), {})
    except (Unsupported, EvalFailure, RecursionError):
        return None
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------
# Elaboration of one request
# ---------------------------------------------------------------------------------------------


class TacticError(Exception):
    """A tactic failed; Lean aborts the enclosing tactic block."""

    def __init__(self, message: str, start: int = 0, end: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end


class TacticRecord:
    """A tactic that ran, for `allTactics` and `infotree`: goals before and after it."""

    __slots__ = ("before", "tac", "self_ref", "after")

    def __init__(self, before: list[Goal], tac: Tac, self_ref: str | None) -> None:
        self.before = before
        self.tac = tac
        self.self_ref = self_ref
        self.after: list[Goal] = []


class Tac:
    """A tactic's tokens (positions are offsets into the request text)."""

    __slots__ = ("toks", "start", "end")

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.start = toks[0].start
        self.end = toks[-1].end

    @property
    def head(self) -> str:
        return self.toks[0].text


_SEQUENCE_HEADS = words("· . case case' next all_goals any_goals try repeat focus on_goal first")


def split_block(toks: list[Tok]) -> list[Tac]:
    """Split a tactic sequence at newlines (same column) and top-level `;`.

    A `;` stays inside constructs that take a whole sequence (`· a; b`, `case x => a; b`,
    `by a; b`), as in Lean's grammar.
    """
    if not toks:
        return []
    col = toks[0].col
    tacs: list[Tac] = []
    start = 0
    depth = 0
    nested = toks[0].text in _SEQUENCE_HEADS
    for k, t in enumerate(toks):
        if k > start and depth == 0 and t.first and t.col <= col and t.text != "|":
            tacs.append(Tac(toks[start:k]))
            start = k
            nested = t.text in _SEQUENCE_HEADS
        s = t.text
        if s in _OPENERS:
            depth += 1
        elif s in _CLOSERS:
            depth = max(depth - 1, 0)
        elif s in ("=>", "by"):
            nested = True
        elif s == ";" and depth == 0 and not nested:
            if k > start:
                tacs.append(Tac(toks[start:k]))
            start = k + 1
            nested = k + 1 < len(toks) and toks[k + 1].text in _SEQUENCE_HEADS
    if start < len(toks):
        tacs.append(Tac(toks[start:]))
    return tacs


def _split_depth0(toks: list[Tok], sep: str) -> list[list[Tok]]:
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.text in _OPENERS:
            depth += 1
        elif t.text in _CLOSERS:
            depth -= 1
        if depth == 0 and t.text == sep:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


_CLOSING_TACTICS = words(
    """rfl decide native_decide norm_num norm_num1 simp simp_all simp_arith simpa omega linarith
    nlinarith positivity trivial aesop tauto ring ring1 polyrith bound gcongr grind cutsat lia
    bv_decide decreasing_tactic decreasing_trivial
    nofun nomatch contradiction infer_instance exact_mod_cast assumption_mod_cast solve_by_elim
    abel group noncomm_ring interval_cases fin_cases eq_refl ac_rfl apply_assumption simp?
    simp_all? aesop? decide! calc match congr exact? norm_num? field_simp? linarith! nlinarith!
    exacts constructorm? tfae_finish continuity measurability fun_prop"""
)
_EVAL_CHECKED = words(
    """rfl decide native_decide norm_num simp simp_all simp_arith omega linarith nlinarith trivial
    eq_refl ac_rfl positivity"""
)
_NOOP_TACTICS = words(
    """skip unfold dsimp simp_rw push_neg push_cast norm_cast ring_nf field_simp clear subst
    subst_vars rename_i rename generalize conv nth_rewrite nth_rw guard_hyp guard_target
    trace_state unfold_let delta whnf contrapose contrapose! zify qify lift ext funext symm
    rcongr change? simp_intro clear_except beta_reduce suffices simp_wf"""
)


class Elab:
    """Elaborates one command (or one tactic) and collects what the REPL reports about it."""

    def __init__(self, src: Source, env: Env, tactic_mode: bool = False) -> None:
        self.src = src
        self.env = env
        self.tactic_mode = tactic_mode
        self.messages: list[dict] = []
        self.sorries: list[tuple[Goal, int, int, str | None]] = []
        self.root_goals: list[tuple[Goal, int, str | None]] = []
        self.tactics: list[TacticRecord] = []
        self.self_ref: str | None = None
        self.declarations: list[dict] = []
        self.record_tactics = False
        self.explicit_sorry = False
        self.synthetic_sorry = False
        self.extra_opts: dict = {}
        #: axioms of the tactics that ran (TACTIC_AXIOMS), for the declaration being elaborated
        self.tactic_axioms: set[str] = set()
        #: native evaluations that ran: the tactic name Lean puts in their axioms, the goal
        self.native_calls: list[tuple[str, str]] = []

    # -- messages --------------------------------------------------------------------------

    def message(self, severity: str, data: str, start: int, end: int) -> None:
        if self.tactic_mode:
            pos = end_pos = {"line": 0, "column": 0}
        else:
            pos, end_pos = self.src.pos(start), self.src.pos(end)
        self.messages.append(
            {"severity": severity, "pos": pos, "endPos": end_pos, "data": data.strip(" \t\r\n")}
        )

    def error(self, data: str, start: int, end: int) -> None:
        self.message("error", data, start, end)

    def info(self, data: str, start: int, end: int) -> None:
        self.message("info", data, start, end)

    def option(self, name: str) -> object:
        if name in self.extra_opts:
            return self.extra_opts[name]
        return self.env.scope["opts"].get(name)

    def pp(self, toks_or_text: list[Tok] | str) -> str:
        mathlib = self.env.mathlib
        if isinstance(toks_or_text, str):
            return pp(toks_or_text, mathlib)
        return pp_toks(toks_or_text, mathlib)

    # -- identifiers -----------------------------------------------------------------------

    def known(self, name: str, locals_: set[str] | tuple) -> bool:
        root = name.split(".", 1)[0]
        if name in locals_ or root in locals_ or name in KEYWORDS or name == self.self_ref:
            return True
        env = self.env
        if env.bare:
            # Lean's empty fallback env: only what this env declared exists.
            return env.resolve(name) is not None or env.resolve(root) is not None
        if "." in name or name.startswith("_") or name.startswith("«"):
            return True
        if env.resolve(name) is not None or name in BUILTIN_IDENTS:
            return True
        if any(f"{o}.{name}" in BUILTIN_AXIOMS for o in env.scope["opens"]):
            return True  # `open Classical` then `em`
        if env.mathlib and name in MATHLIB_IDENTS:
            return True
        return env.is_namespace(name) and not (len(env.imports) > 0 and name[:1].islower())

    def check_term(self, toks: list[Tok], locals_: set[str] | tuple) -> bool:
        """Log `Unknown identifier` errors for a term; True when it elaborated cleanly."""
        if any(t.text in _BINDING_TOKENS for t in toks):
            return True
        ok = True
        for t in toks:
            if t.kind == "id" and not self.known(t.text, locals_):
                self.error(f"Unknown identifier `{t.text}`", t.start, t.end)
                ok = False
        return ok

    def check_bare_numerals(self, toks: list[Tok]) -> bool:
        """In Lean's empty fallback env a numeral has no `OfNat`: an error, never a value.
        (The fake's stand-in text: Lean's exact words there are not verified.)"""
        if not self.env.bare:
            return True
        for t in toks:
            if t.kind == "num":
                self.error("Unknown constant `OfNat`", t.start, t.end)
                return False
        return True

    def first_unknown(self, toks: list[Tok], locals_: set[str] | tuple) -> Tok | None:
        if any(t.text in _BINDING_TOKENS for t in toks):
            return None
        for t in toks:
            if t.kind == "id" and not self.known(t.text, locals_):
                return t
        return None

    # -- sorries and tactic blocks ---------------------------------------------------------

    def record_sorry(self, goal: Goal, start: int, end: int) -> None:
        self.sorries.append((goal, start, end, self.self_ref))
        self.explicit_sorry = True

    def run_by_block(self, by_tok: Tok, region: list[Tok], goal: Goal, root: bool) -> bool:
        """Run a `by` block on `goal`; log its errors like Lean's term elaborator does."""
        if root and self.want_root_goals:
            self.root_goals.append((goal, by_tok.start, self.self_ref))
        saved = self.explicit_sorry
        try:
            goals = self.run_seq(split_block(region), [goal])
        except TacticError as exc:
            self.error(exc.message, exc.start, exc.end)
            self.explicit_sorry = saved
            self.synthetic_sorry = True
            return False
        if goals:
            end = region[-1].end if region else by_tok.end
            self.error("unsolved goals\n" + goals_text(goals), by_tok.start, end)
            self.synthetic_sorry = True
            return False
        return True

    want_root_goals = False

    def run_seq(self, tacs: list[Tac], goals: list[Goal]) -> list[Goal]:
        for tac in tacs:
            goals = self.run_tac(tac, goals)
        return goals

    def run_nested(self, toks: list[Tok], goals: list[Goal]) -> list[Goal]:
        return self.run_seq(split_block(toks), goals)

    def focus_block(self, tac: Tac, body: list[Tok], goal: Goal, err_tok: Tok | None) -> None:
        """Run `body` on `goal` alone; leftover goals are an error (logged, then admitted)."""
        try:
            left = self.run_nested(body, [goal])
        except TacticError as exc:
            self.error(exc.message, exc.start, exc.end)
            self.synthetic_sorry = True
            return
        if left:
            start, end = (err_tok.start, err_tok.end) if err_tok else (tac.start, tac.end)
            self.error("unsolved goals\n" + goals_text(left), start, end)
            self.synthetic_sorry = True

    def run_tac(self, tac: Tac, goals: list[Goal]) -> list[Goal]:
        toks = tac.toks
        k = _find_depth0(toks, 1, {"<;>"})
        if 0 < k < len(toks) - 1:
            if not goals:
                raise TacticError("No goals to be solved", tac.start, tac.end)
            rest = Tac(toks[k + 1 :])
            out: list[Goal] = []
            for g in self.run_tac(Tac(toks[:k]), goals[:1]):
                out.extend(self.run_tac(rest, [g]))
            return out + goals[1:]
        head = toks[0].text
        combinator = _COMBINATORS.get(head)
        if combinator is not None:
            return combinator(self, tac, goals)
        if not self.record_tactics:
            return self.run_leaf(tac, goals)
        record = TacticRecord(list(goals), tac, self.self_ref)
        self.tactics.append(record)
        record.after = self.run_leaf(tac, goals)
        return record.after

    def run_leaf(self, tac: Tac, goals: list[Goal]) -> list[Goal]:
        after = self.leaf(tac, goals)
        self.note_axioms(tac, goals[0].target if goals else "?")
        return after

    def note_axioms(self, tac: Tac, target: str) -> None:
        """Remember the axioms the proof term of a tactic that succeeded uses."""
        head = tac.head
        self.tactic_axioms.update(TACTIC_AXIOMS.get(head, ()))
        toks = tac.toks
        if head in NATIVE_TACTICS or (
            head == "decide"
            and any(t.text == "native" and toks[k].text == "+" for k, t in enumerate(toks[1:]))
        ):
            self.native_calls.append((head, target))

    def leaf(self, tac: Tac, goals: list[Goal]) -> list[Goal]:
        toks = tac.toks
        head = toks[0].text
        if head in ("sorry", "admit"):
            goal = self.need_goal(tac, goals)
            self.record_sorry(goal, toks[0].start, toks[0].end)
            return goals[1:]
        handler = _TACTICS.get(head)
        if handler is not None:
            return handler(self, tac, goals)
        if head in _CLOSING_TACTICS:
            return self.close(tac, goals)
        if head in _NOOP_TACTICS:
            self.need_goal(tac, goals)
            return goals
        t = toks[0]
        line = t.line + 1
        raise TacticError(
            f"<input>:{line}:{t.col + 1}: unknown tactic" if self.tactic_mode else "unknown tactic",
            t.start,
            t.end,
        )

    def need_goal(self, tac: Tac, goals: list[Goal]) -> Goal:
        if not goals:
            raise TacticError("No goals to be solved", tac.start, tac.end)
        return goals[0]

    def contradictory(self, goal: Goal) -> bool:
        types = {ty for _, ty in goal.hyps}
        if "False" in types:
            return True
        for ty in types:
            if ("¬" + ty) in types or ("¬(" + ty + ")") in types:
                return True
            if evaluate_prop(ty, self.env) is False:
                return True
        return False

    def close(self, tac: Tac, goals: list[Goal]) -> list[Goal]:
        goal = self.need_goal(tac, goals)
        head = tac.head
        toks = tac.toks
        if any(t.text == "at" for t in toks) and head not in ("simpa",):
            return goals[1:] if self.contradictory(goal) else goals
        bracket = _find_depth0(toks, 1, {"["})
        if bracket > 0:
            end = _matching(toks, bracket)
            bad = self.first_unknown(toks[bracket + 1 : end], {h[0] for h in goal.hyps})
            if bad is not None:
                raise TacticError(f"Unknown identifier `{bad.text}`", bad.start, bad.end)
        if head == "exact?":
            if goal.target == "False" and not self.contradictory(goal):
                raise TacticError(
                    "`exact?` could not close the goal. Try `apply?` to see partial suggestions.",
                    tac.start,
                    tac.end,
                )
            self.info("Try this:\n  [apply] exact rfl", tac.start, tac.end)
            return goals[1:]
        if head in _EVAL_CHECKED and not self.contradictory(goal):
            truth = evaluate_prop(goal.target, self.env)
            if truth is False:
                raise TacticError(closing_failure(head, goal), tac.start, tac.end)
        return goals[1:]


def closing_failure(head: str, goal: Goal) -> str:
    target = goal.target
    if head in ("rfl", "eq_refl", "ac_rfl"):
        sides = split_top(target, "=")
        if sides:
            return (
                f"Tactic `rfl` failed: The left-hand side\n  {sides[0]}\nis not definitionally "
                f"equal to the right-hand side\n  {sides[1]}\n\n{goal.text()}"
            )
        return f"The rfl tactic failed.\n\n{goal.text()}"
    if head in ("decide", "native_decide"):
        return f"Tactic `decide` proved that the proposition\n  {target}\nis false"
    if head == "omega":
        return "omega could not prove the goal"
    if head in ("linarith", "nlinarith"):
        return f"linarith failed to find a contradiction\n{goal.text()}"
    if head in ("simp", "simp_all", "simp_arith", "norm_num"):
        return "simp made no progress"
    return f"Tactic `{head}` failed\n\n{goal.text()}"


# -- tactic handlers (each takes the Elab, the tactic and the goals; returns the new goals) ----


def _t_exact(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    term = tac.toks[1:]
    locals_ = {h[0] for h in goal.hyps}
    if [t.text for t in term] == ["sorry"]:
        el.record_sorry(goal, term[0].start, term[0].end)
        return goals[1:]
    if not el.check_term(term, locals_):
        el.synthetic_sorry = True
        return goals[1:]
    if len(term) == 1 and term[0].kind == "id":
        name = term[0].text
        hyp = goal.hyp(name)
        if hyp is not None and hyp != goal.target and not el.contradictory(goal):
            el.error(
                f"type mismatch\n  {name}\nhas type\n  {hyp} : Prop\nbut is expected to have "
                f"type\n  {goal.target} : Prop",
                term[0].start,
                term[0].end,
            )
            el.synthetic_sorry = True
            return goals[1:]
        if name == "rfl" and evaluate_prop(goal.target, el.env) is False:
            sides = split_top(goal.target, "=")
            lhs = sides[0] if sides else goal.target
            el.error(
                f"type mismatch\n  rfl\nhas type\n  {lhs} = {lhs} : Prop\nbut is expected to have "
                f"type\n  {goal.target} : Prop",
                term[0].start,
                term[0].end,
            )
            el.synthetic_sorry = True
            return goals[1:]
    return goals[1:]


def _t_intro(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    names = [t.text for t in tac.toks[1:] if t.kind == "id" or t.text == "_"]
    head = tac.head
    count = len(names) or (99 if head == "intros" else 1)
    for k in range(count):
        name = names[k] if k < len(names) else None
        step = intro_once(goal, name)
        if step is None:
            if head == "intros" and not names:
                break
            raise TacticError(
                "Tactic `intro` failed: no additional binders or let-declarations to introduce"
                f"\n\n{goal.text()}",
                tac.start,
                tac.end,
            )
        goal = step
    return [goal, *goals[1:]]


def intro_once(goal: Goal, name: str | None) -> Goal | None:
    target = goal.target
    toks = toks_of(target)
    if not toks:
        return None
    if toks[0].text == "∀":
        comma = _find_depth0(toks, 1, {","})
        if comma < 0:
            return None
        binder = toks[1:comma]
        body = target[toks[comma].end :].strip()
        if not binder:
            return None
        opener = binder[0].text
        closer = {"(": ")", "{": "}", "⦃": "⦄", "[": "]"}.get(opener)
        if closer is not None:
            close = _matching(binder, 0)
            group, later = binder[1:close], binder[close + 1 :]
        else:
            opener, closer, group, later = "(", ")", binder, []
        colon = _find_depth0(group, 0, {":"})
        bnames = [t.text for t in (group[:colon] if colon >= 0 else group)]
        ty = pp_toks(group[colon + 1 :]) if colon >= 0 else "?"
        remaining = []
        if len(bnames) > 1:
            names_rest = " ".join(bnames[1:])
            remaining.append(f"{opener}{names_rest} : {ty}{closer}" if colon >= 0 else names_rest)
        if later:
            remaining.append(pp_toks(later))
        if remaining:
            body = f"∀ {' '.join(remaining)}, {body}"
        if not bnames:
            return None
        var = bnames[0]
        new_name = name if name and name != "_" else (var if name is None else var + "✝")
        if new_name != var:
            body = substitute(body, var, new_name)
        return goal.but(target=pp(body), add=((new_name, ty),))
    arrow = split_top(target, "→")
    if arrow is not None:
        return goal.but(target=arrow[1], add=((name or "a✝", arrow[0]),))
    if toks[0].text == "¬":
        return goal.but(target="False", add=((name or "a✝", strip_parens(target[1:].strip())),))
    return None


def _t_constructor(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    return split_goal(goal) + goals[1:]


def split_goal(goal: Goal) -> list[Goal]:
    conj = split_top(goal.target, "∧")
    if conj is not None:
        return [goal.but(target=conj[0], tag="left"), goal.but(target=conj[1], tag="right")]
    iff = split_top(goal.target, "↔")
    if iff is not None:
        a, b = iff
        return [
            goal.but(target=f"{a} → {b}", tag="mp"),
            goal.but(target=f"{b} → {a}", tag="mpr"),
        ]
    return []


def _t_apply(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    term = tac.toks[1:]
    locals_ = {h[0] for h in goal.hyps}
    if not el.check_term(term, locals_):
        el.synthetic_sorry = True
        return goals[1:]
    name = term[0].text if len(term) == 1 else None
    if name in ("And.intro", "Iff.intro"):
        return split_goal(goal) + goals[1:]
    if name in ("Or.inl", "Or.inr"):
        disj = split_top(goal.target, "∨")
        if disj is not None:
            return [goal.but(target=disj[0 if name == "Or.inl" else 1], tag="h"), *goals[1:]]
    if name == "Nat.succ" and goal.target in ("Nat", "ℕ"):
        return goals
    if name == "Int.natAbs" and goal.target in ("Nat", "ℕ"):
        return [goal.but(target="Int" if goal.target == "Nat" else "ℤ"), *goals[1:]]
    if name is not None:
        hyp = goal.hyp(name)
        if hyp is not None:
            premises = []
            rest = hyp
            while rest != goal.target:
                arrow = split_top(rest, "→")
                if arrow is None:
                    break
                premises.append(arrow[0])
                rest = arrow[1]
            if rest == goal.target:
                return [goal.but(target=p) for p in premises] + goals[1:]
            if "→" not in hyp and "∀" not in hyp:
                raise TacticError(
                    f"Tactic `apply` failed: could not unify the type of `{name}`\n  {hyp}\n"
                    f"with the goal\n  {goal.target}\n\n{goal.text()}",
                    tac.start,
                    tac.end,
                )
    return goals[1:]


def _t_refine(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    term = tac.toks[1:]
    if not el.check_term(term, {h[0] for h in goal.hyps}):
        el.synthetic_sorry = True
        return goals[1:]
    holes = sum(1 for t in term if t.text in ("?_",) or t.kind == "mvar")
    if holes == 2 and term and term[0].text == "⟨":
        parts = split_goal(goal)
        if parts:
            return parts + goals[1:]
    if holes == 1 and term and term[0].text == "⟨":
        exists = _exists_parts(goal.target)
        inner = _split_depth0(term[1:-1], ",")
        if exists and len(inner) == 2:
            var, body = exists
            return [goal.but(target=pp(substitute(body, var, pp_toks(inner[0])))), *goals[1:]]
    return goals[1:]


def _exists_parts(target: str) -> tuple[str, str] | None:
    toks = toks_of(target)
    if len(toks) > 3 and toks[0].text == "∃" and toks[1].kind == "id":
        comma = _find_depth0(toks, 1, {","})
        if comma > 0:
            return toks[1].text, target[toks[comma].end :].strip()
    return None


def _t_use(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    term = tac.toks[1:]
    if not el.check_term(term, {h[0] for h in goal.hyps}):
        el.synthetic_sorry = True
        return goals[1:]
    exists = _exists_parts(goal.target)
    if exists is None:
        return goals[1:]
    var, body = exists
    new_target = pp(substitute(body, var, pp_toks(_split_depth0(term, ",")[0])))
    if evaluate_prop(new_target, el.env) is not False:
        truth = evaluate_prop(new_target, el.env)
        if truth or new_target == "True":
            return goals[1:]
    return [goal.but(target=new_target, tag="h"), *goals[1:]]


def _t_left_right(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    disj = split_top(goal.target, "∨")
    if disj is None:
        raise TacticError(
            f"Tactic `{tac.head}` failed: the goal is not an inductive type with two "
            f"constructors\n\n{goal.text()}",
            tac.start,
            tac.end,
        )
    return [goal.but(target=disj[0 if tac.head == "left" else 1], tag="h"), *goals[1:]]


def _t_exfalso(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    return [goal.but(target="False"), *goals[1:]]


def _t_by_contra(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    name = tac.toks[1].text if len(tac.toks) > 1 and tac.toks[1].kind == "id" else "h✝"
    return [goal.but(target="False", add=((name, negate(goal.target)),)), *goals[1:]]


def _t_by_cases(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    rest = tac.toks[1:]
    name = "h✝"
    if len(rest) > 2 and rest[0].kind == "id" and rest[1].text == ":":
        name = rest[0].text
        rest = rest[2:]
    if not rest:
        raise TacticError("unexpected end of input", tac.end, tac.end)
    if not el.check_term(rest, {h[0] for h in goal.hyps}):
        el.synthetic_sorry = True
        return goals[1:]
    prop = el.pp(rest)
    if len(rest) == 1 and goal.hyp(rest[0].text) == "Bool":
        prop = f"{prop} = true"
    pos = goal.but(add=((name, prop),), tag="pos")
    neg = goal.but(add=((name, negate(prop)),), tag="neg")
    return [pos, neg, *goals[1:]]


def _t_have(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    toks = tac.toks
    assign = _find_depth0(toks, 1, {":="})
    header = toks[1 : assign if assign > 0 else len(toks)]
    proof = toks[assign + 1 :] if assign > 0 else []
    colon = _find_depth0(header, 0, {":"})
    name_toks = header[:colon] if colon >= 0 else header
    name = name_toks[0].text if name_toks and name_toks[0].kind == "id" else "this"
    locals_ = {h[0] for h in goal.hyps}
    if colon >= 0:
        ty_toks = header[colon + 1 :]
        if not el.check_term(ty_toks, locals_ | {name}):
            el.synthetic_sorry = True
        ty = el.pp(ty_toks)
    else:
        ty = None
    if name_toks and name_toks[0].text == "⟨" and proof:
        src = proof[0].text if len(proof) == 1 else None
        hyp = goal.hyp(src) if src else None
        names = [t.text for t in name_toks if t.kind == "id"]
        return [destructure(goal, names, hyp, src), *goals[1:]]
    if ty is None and proof:
        try:
            ty = infer_type(parse_expr(proof), el.env, dict(goal.hyps))
        except Unsupported:
            ty = None
        if ty is None and len(proof) == 1:
            ty = _projection_type(goal, proof[0].text)
        ty = ty or "?"
    if not ty:
        raise TacticError("unexpected end of input; expected ':=' or '|'", tac.end, tac.end)
    sub = Goal(ty, goal.hyps)
    keyword = tac.head
    if keyword == "let" or keyword == "set":
        added = ((name, f"{ty} := {el.pp(proof)}" if proof else ty),)
    else:
        added = ((name, ty),)
    new_goal = goal.but(add=added)
    if not proof:
        return [sub, new_goal, *goals[1:]]
    texts = [t.text for t in proof]
    if texts == ["sorry"]:
        el.record_sorry(sub, proof[0].start, proof[0].end)
    elif texts[0] == "by":
        saved = el.explicit_sorry
        try:
            left = el.run_nested(proof[1:], [sub])
        except TacticError as exc:
            el.error(exc.message, exc.start, exc.end)
            el.explicit_sorry = saved
            el.synthetic_sorry = True
            left = []
        if left:
            el.error("unsolved goals\n" + goals_text(left), proof[0].start, proof[-1].end)
            el.synthetic_sorry = True
    elif not el.check_term(proof, locals_):
        el.synthetic_sorry = True
    return [new_goal, *goals[1:]]


def _projection_type(goal: Goal, text: str) -> str | None:
    base, _, field = text.partition(".")
    hyp = goal.hyp(base)
    if hyp is None or not field:
        return hyp if not field else None
    conj = split_top(hyp, "∧")
    if conj and field in ("1", "left"):
        return conj[0]
    if conj and field in ("2", "right"):
        return conj[1]
    iff = split_top(hyp, "↔")
    if iff and field in ("mp", "1"):
        return f"{iff[0]} → {iff[1]}"
    if iff and field in ("mpr", "2"):
        return f"{iff[1]} → {iff[0]}"
    return None


def destructure(goal: Goal, names: list[str], hyp: str | None, src: str | None) -> Goal:
    """`obtain ⟨a, b⟩ := h` on `h : A ∧ B` or `h : ∃ x, P`."""
    if hyp is None:
        return goal.but(add=tuple((n, "?") for n in names))
    base = goal.but(drop=src)
    added = []
    rest = hyp
    for k, n in enumerate(names):
        if k == len(names) - 1:
            added.append((n, rest))
            break
        ex = _exists_parts(rest)
        if ex is not None:
            var, body = ex
            added.append((n, "?"))
            rest = pp(substitute(body, var, n))
            continue
        conj = split_top(rest, "∧")
        if conj is None:
            added.append((n, rest))
            break
        added.append((n, conj[0]))
        rest = conj[1]
    return base.but(add=tuple(added))


def _t_obtain(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    toks = tac.toks
    head = tac.head
    if head == "obtain":
        assign = _find_depth0(toks, 1, {":="})
        if assign < 0:
            return _t_have(el, tac, goals)
        pat, src_toks = toks[1:assign], toks[assign + 1 :]
    else:
        with_k = _find_depth0(toks, 1, {"with"})
        src_toks = toks[1 : with_k if with_k > 0 else len(toks)]
        pat = toks[with_k + 1 :] if with_k > 0 else []
    if not el.check_term(src_toks, {h[0] for h in goal.hyps}):
        el.synthetic_sorry = True
        return goals[1:]
    src = src_toks[0].text if len(src_toks) == 1 else None
    hyp = goal.hyp(src) if src else None
    alts = _split_depth0(pat[1:-1] if pat and pat[0].text == "⟨" else pat, "|")
    if hyp is not None and len(alts) == 2:
        disj = split_top(hyp, "∨")
        if disj is not None:
            out = []
            for side, alt, tag in ((disj[0], alts[0], "inl"), (disj[1], alts[1], "inr")):
                name = alt[0].text if alt and alt[0].kind == "id" else "h✝"
                out.append(goal.but(drop=src, add=((name, side),), tag=tag))
            return out + goals[1:]
    names = [t.text for t in pat if t.kind == "id" or t.text == "_"]
    return [destructure(goal, names, hyp, src), *goals[1:]]


def _t_cases(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    toks = tac.toks
    with_k = _find_depth0(toks, 1, {"with"})
    target_toks = toks[1 : with_k if with_k > 0 else len(toks)]
    if len(target_toks) > 2 and target_toks[0].kind == "id" and target_toks[1].text == ":":
        target_toks = target_toks[2:]
    if not el.check_term(target_toks, {h[0] for h in goal.hyps}):
        el.synthetic_sorry = True
        return goals[1:]
    alts = _parse_alts(toks[with_k + 1 :]) if with_k > 0 else {}
    subject = el.pp(target_toks)
    hyp = goal.hyp(subject)
    induction = tac.head == "induction"
    produced = case_split(goal, subject, hyp, alts, induction, el.env)
    if produced is None:
        return goals[1:]
    if not alts:
        return produced + goals[1:]
    out: list[Goal] = []
    for g in produced:
        alt = alts.get(g.tag)
        if alt is None:
            out.append(g)
            continue
        body = alt[1]
        try:
            left = el.run_nested(body, [g.but(tag=None)])
        except TacticError as exc:
            el.error(exc.message, exc.start, exc.end)
            el.synthetic_sorry = True
            continue
        if left:
            el.error("unsolved goals\n" + goals_text(left), alt[0].start, alt[0].end)
            el.synthetic_sorry = True
    return out + goals[1:]


def _parse_alts(toks: list[Tok]) -> dict:
    """`| succ k ih => tacs` alternatives: tag -> (bar token, body tokens, names)."""
    alts: dict = {}
    current: list[Tok] | None = None
    chunks: list[list[Tok]] = []
    for t in toks:
        if t.text == "|" and (t.first or current is None):
            current = [t]
            chunks.append(current)
        elif current is not None:
            current.append(t)
    for chunk in chunks:
        arrow = _find_depth0(chunk, 1, {"=>"})
        if arrow < 0 or len(chunk) < 2:
            continue
        head = [t.text for t in chunk[1:arrow]]
        tag = head[0].lstrip(".").rpartition(".")[2] if head else ""
        if head and head[0] == "." and len(head) > 1:
            tag, head = head[1], head[1:]
        alts[tag] = (chunk[0], chunk[arrow + 1 :], head[1:])
    return alts


def case_split(
    goal: Goal, subject: str, hyp: str | None, alts: dict, induction: bool, env: Env
) -> list[Goal] | None:
    def names_for(tag: str, default: list[str]) -> list[str]:
        given = alts.get(tag, (None, None, []))[2]
        named = [g if g != "_" else d for g, d in zip(given, default, strict=False)]
        return named + default[len(given) :]

    if hyp is not None:
        conj = split_top(hyp, "∧")
        if conj is not None:
            a, b = names_for("intro", ["left✝", "right✝"])
            return [goal.but(drop=subject, add=((a, conj[0]), (b, conj[1])), tag="intro")]
        disj = split_top(hyp, "∨")
        if disj is not None:
            (a,) = names_for("inl", ["h✝"])[:1]
            (b,) = names_for("inr", ["h✝"])[:1]
            return [
                goal.but(drop=subject, add=((a, disj[0]),), tag="inl"),
                goal.but(drop=subject, add=((b, disj[1]),), tag="inr"),
            ]
        ex = _exists_parts(hyp)
        if ex is not None:
            w, h = names_for("intro", ["w✝", "h✝"])
            return [
                goal.but(
                    drop=subject, add=((w, "?"), (h, pp(substitute(ex[1], ex[0], w)))), tag="intro"
                )
            ]
    is_nat = hyp in ("Nat", "ℕ") or (hyp is None and subject.isdigit())
    if is_nat:
        nat = hyp or ("ℕ" if env.mathlib else "Nat")
        n, ih = names_for("succ", ["n✝", "a✝" if induction else "ih✝"])
        zero_target = pp(substitute(goal.target, subject, "0"))
        succ_target = pp(substitute(goal.target, subject, f"{n} + 1"))
        drop = subject if hyp is not None else None
        zero = goal.but(target=zero_target, drop=drop, tag="zero")
        added = [(n, nat)]
        if induction:
            added.append((ih, pp(substitute(goal.target, subject, n))))
        succ = goal.but(target=succ_target, drop=drop, add=tuple(added), tag="succ")
        return [zero, succ]
    if hyp == "Bool":
        return [
            goal.but(
                target=pp(substitute(goal.target, subject, "false")), drop=subject, tag="false"
            ),
            goal.but(target=pp(substitute(goal.target, subject, "true")), drop=subject, tag="true"),
        ]
    return None


def _t_show(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    from_k = _find_depth0(tac.toks, 1, {"from", "by"})
    ty = tac.toks[1 : from_k if from_k > 0 else len(tac.toks)]
    if from_k > 0:
        return goals[1:]
    return [goal.but(target=el.pp(ty)), *goals[1:]]


def _t_specialize(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    args = tac.toks[1:]
    if not args:
        return goals
    name = args[0].text
    hyp = goal.hyp(name)
    if not el.check_term(args, {h[0] for h in goal.hyps}) or hyp is None:
        return goals
    ty = hyp
    for arg in args[1:]:
        g = intro_once(Goal(ty), None)
        if g is None:
            break
        var = g.hyps[-1][0]
        ty = pp(substitute(g.target, var, arg.text)) if not var.endswith("✝") else g.target
    hyps = tuple((n, ty if n == name else t) for n, t in goal.hyps)
    return [Goal(goal.target, hyps, goal.tag), *goals[1:]]


def _t_rw(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    toks = tac.toks
    lb = _find_depth0(toks, 1, {"["})
    if lb < 0:
        return goals[1:]
    rb = _matching(toks, lb)
    at_k = _find_depth0(toks, rb + 1, {"at"})
    at_name = toks[at_k + 1].text if at_k > 0 and at_k + 1 < len(toks) else None
    locals_ = {h[0] for h in goal.hyps}
    target = goal.target if at_name is None else goal.hyp(at_name)
    opaque = False
    for rule in _split_depth0(toks[lb + 1 : rb], ","):
        if not rule:
            continue
        reverse = rule[0].text in ("←", "<-")
        if reverse:
            rule = rule[1:]
        bad = el.first_unknown(rule, locals_)
        if bad is not None:
            raise TacticError(f"Unknown identifier `{bad.text}`", bad.start, bad.end)
        eq = None
        if len(rule) == 1:
            eq_text = goal.hyp(rule[0].text)
            if eq_text is None:
                found = el.env.resolve(rule[0].text)
                if found and not found[1].get("builtin") and not found[1].get("binders"):
                    eq_text = found[1].get("type")
            if eq_text is not None:
                eq = split_top(eq_text, "=")
        if eq is None or target is None:
            opaque = True
            continue
        lhs, rhs = (eq[1], eq[0]) if reverse else eq
        new = replace_seq(target, lhs, rhs)
        if new is None:
            raise TacticError(
                "Tactic `rewrite` failed: Did not find an instance of the pattern in the target "
                f"expression\n  {lhs}\n\n{goal.text()}",
                rule[0].start,
                rule[-1].end,
            )
        target = new
    if at_name is not None:
        hyps = tuple((n, target if n == at_name else t) for n, t in goal.hyps)
        goal = Goal(goal.target, hyps, goal.tag)
        return [goal, *goals[1:]]
    sides = split_top(target, "=")
    if opaque or target == "True" or (sides and sides[0] == sides[1]):
        return goals[1:]
    if evaluate_prop(target, el.env):
        return goals[1:]
    if tac.head == "rwa":
        return goals[1:]
    return [goal.but(target=target), *goals[1:]]


def _t_assumption(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    if any(ty == goal.target for _, ty in goal.hyps) or el.contradictory(goal):
        return goals[1:]
    raise TacticError(f"Tactic `assumption` failed\n\n{goal.text()}", tac.start, tac.end)


def _t_done(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    if goals:
        raise TacticError("unsolved goals\n" + goals_text(goals), tac.start, tac.end)
    return goals


def _t_split(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    toks = toks_of(goal.target)
    k = _find_depth0(toks, 0, {"if"})
    if k < 0:
        return goals[1:]
    then_k = _find_depth0(toks, k + 1, {"then"})
    cond = goal.target[toks[k].end : toks[then_k].start].strip() if then_k > 0 else "?"
    return [
        goal.but(add=(("h✝", cond),), tag="isTrue"),
        goal.but(add=(("h✝", negate(cond)),), tag="isFalse"),
        *goals[1:],
    ]


def _t_swap(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    if len(goals) < 2:
        return goals
    if tac.head == "rotate_left":
        return goals[1:] + goals[:1]
    return [goals[1], goals[0], *goals[2:]]


def _t_trace(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    arg = tac.toks[1:]
    if arg and arg[0].kind == "str":
        el.info(json.loads(arg[0].text), tac.start, tac.end)
    return goals


_TACTICS = {
    "exact": _t_exact,
    "intro": _t_intro,
    "intros": _t_intro,
    "rintro": _t_intro,
    "constructor": _t_constructor,
    "apply": _t_apply,
    "refine": _t_refine,
    "refine'": _t_refine,
    "use": _t_use,
    "exists": _t_use,
    "existsi": _t_use,
    "left": _t_left_right,
    "right": _t_left_right,
    "exfalso": _t_exfalso,
    "by_contra": _t_by_contra,
    "by_contra!": _t_by_contra,
    "by_cases": _t_by_cases,
    "have": _t_have,
    "haveI": _t_have,
    "let": _t_have,
    "set": _t_have,
    "obtain": _t_obtain,
    "rcases": _t_obtain,
    "cases": _t_cases,
    "cases'": _t_cases,
    "induction": _t_cases,
    "induction'": _t_cases,
    "show": _t_show,
    "change": _t_show,
    "specialize": _t_specialize,
    "rw": _t_rw,
    "rewrite": _t_rw,
    "rwa": _t_rw,
    "assumption": _t_assumption,
    "done": _t_done,
    "split": _t_split,
    "swap": _t_swap,
    "rotate_left": _t_swap,
    "trace": _t_trace,
}


# -- combinators (do not appear in allTactics themselves) ----------------------------------------


def _c_bullet(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    el.focus_block(tac, tac.toks[1:], goal, tac.toks[0])
    return goals[1:]


def _c_braces(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    toks = tac.toks
    close = _matching(toks, 0)
    el.focus_block(tac, toks[1:close], goal, toks[close])
    return goals[1:]


def _c_case(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    toks = tac.toks
    arrow = _find_depth0(toks, 1, {"=>"})
    if arrow < 0:
        raise TacticError("unexpected end of input; expected '=>'", tac.end, tac.end)
    if tac.head == "next":
        idx = 0 if goals else -1
    else:
        tag = toks[1].text if len(toks) > 1 else "_"
        idx = -1
        for k, g in enumerate(goals):
            if g.tag == tag or (g.tag or "").endswith("." + tag) or tag == "_":
                idx = k
                break
        if idx < 0:
            tags = [g.tag for g in goals if g.tag]
            note = (
                "Note: There are no cases to select."
                if not tags
                else "Available tags: " + ", ".join(f"`{t}`" for t in tags)
            )
            raise TacticError(f"Case tag `{tag}` not found.\n\n{note}", toks[1].start, toks[1].end)
    if idx < 0:
        raise TacticError("No goals to be solved", tac.start, tac.end)
    goal = goals[idx]
    rest = goals[:idx] + goals[idx + 1 :]
    names = [t.text for t in toks[1 if tac.head == "next" else 2 : arrow] if t.kind == "id"]
    if names:
        hyps = list(goal.hyps)
        pos = len(hyps) - 1
        for name in reversed(names):
            while pos >= 0 and not hyps[pos][0].endswith("✝"):
                pos -= 1
            if pos < 0:
                break
            hyps[pos] = (name, hyps[pos][1])
            pos -= 1
        goal = Goal(goal.target, tuple(hyps), goal.tag)
    el.focus_block(tac, toks[arrow + 1 :], goal.but(tag=None), None)
    return rest


def _c_all_goals(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    body = tac.toks[1:]
    out: list[Goal] = []
    failures = 0
    first_error: TacticError | None = None
    for g in goals:
        try:
            out.extend(el.run_nested(body, [g]))
        except TacticError as exc:
            if tac.head == "all_goals":
                raise
            failures += 1
            first_error = first_error or exc
            out.append(g)
    if tac.head == "any_goals" and goals and failures == len(goals) and first_error is not None:
        raise first_error
    return out


def _c_try(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    try:
        return el.run_nested(tac.toks[1:], goals)
    except TacticError:
        return goals


def _c_repeat(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    for _ in range(100):
        if not goals:
            break
        try:
            new = el.run_nested(tac.toks[1:], goals)
        except TacticError:
            break
        if [g.text() for g in new] == [g.text() for g in goals]:
            break
        goals = new
    return goals


def _c_first(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    alternatives = [a for a in _split_depth0(tac.toks[1:], "|") if a]
    error: TacticError | None = None
    for alt in alternatives:
        try:
            return el.run_nested(alt, goals)
        except TacticError as exc:
            error = error or exc
    raise error or TacticError("first failed", tac.start, tac.end)


def _c_focus(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    goal = el.need_goal(tac, goals)
    return el.run_nested(tac.toks[1:], [goal]) + goals[1:]


def _c_paren(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    close = _matching(tac.toks, 0)
    return el.run_nested(tac.toks[1:close], goals)


def _c_prefix(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    """`classical tac`, `with_reducible tac`, `open Foo in tac`, `set_option x v in tac`."""
    toks = tac.toks
    in_k = _find_depth0(toks, 1, {"in"})
    if toks[0].text in ("open", "set_option"):
        if in_k < 0:
            return goals
        rest = toks[in_k + 1 :]
    else:
        rest = toks[1:]
    if not rest:
        return goals
    return el.run_nested(rest, goals)


def _c_on_goal(el: Elab, tac: Tac, goals: list[Goal]) -> list[Goal]:
    toks = tac.toks
    arrow = _find_depth0(toks, 1, {"=>"})
    if arrow < 0 or len(toks) < 3 or toks[1].kind != "num":
        return goals
    idx = int(toks[1].text) - 1
    if not 0 <= idx < len(goals):
        raise TacticError("No goals to be solved", tac.start, tac.end)
    produced = el.run_nested(toks[arrow + 1 :], [goals[idx]])
    return goals[:idx] + produced + goals[idx + 1 :]


_COMBINATORS = {
    "·": _c_bullet,
    ".": _c_bullet,
    "{": _c_braces,
    "(": _c_paren,
    "case": _c_case,
    "case'": _c_case,
    "next": _c_case,
    "all_goals": _c_all_goals,
    "any_goals": _c_all_goals,
    "try": _c_try,
    "repeat": _c_repeat,
    "repeat'": _c_repeat,
    "first": _c_first,
    "focus": _c_focus,
    "classical": _c_prefix,
    "with_reducible": _c_prefix,
    "show_term": _c_prefix,
    "open": _c_prefix,
    "set_option": _c_prefix,
    "on_goal": _c_on_goal,
}


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

_DECL_KEYWORDS = words(
    "def theorem lemma abbrev example instance structure inductive class axiom opaque"
)  # noqa: SIM905
_MODIFIERS = words("noncomputable private protected partial unsafe nonrec public meta")
_COMMAND_KEYWORDS = (
    _DECL_KEYWORDS
    | _MODIFIERS
    | frozenset(
        [
            "namespace",
            "section",
            "end",
            "open",
            "variable",
            "universe",
            "universes",
            "set_option",
            "import",
            "attribute",
            "mutual",
            "notation",
            "infix",
            "infixl",
            "infixr",
            "prefix",
            "postfix",
            "macro",
            "syntax",
            "macro_rules",
            "elab",
            "scoped",
            "local",
            "export",
            "omit",
            "include",
            "initialize",
            "builtin_initialize",
            "declare_syntax_cat",
            "elab_rules",
            "add_decl_doc",
            "deriving",
        ]
    )
)
_IGNORED_COMMANDS = words(
    """attribute notation infix infixl infixr prefix postfix macro syntax macro_rules elab scoped
    local export omit include initialize builtin_initialize declare_syntax_cat elab_rules
    add_decl_doc deriving"""
)
DOCSTRING_QUERY = re.compile(r"findDocString\? \(← getEnv\) `([\w.'’]+)")


def _starts_command(toks: list[Tok], k: int) -> bool:
    t = toks[k]
    if t.kind in ("hash", "doc"):
        return True
    if t.text == "@[":
        return True
    if t.kind != "id" or t.text not in _COMMAND_KEYWORDS:
        return False
    if t.text == "deriving":
        return k + 1 < len(toks) and toks[k + 1].text == "instance"
    return True


def _modifier_only(toks: list[Tok]) -> bool:
    k = 0
    while k < len(toks):
        t = toks[k]
        if t.kind == "doc" or t.text in _MODIFIERS:
            k += 1
        elif t.text == "@[":
            k = _matching(toks, k) + 1
        else:
            return False
    return True


def split_commands(toks: list[Tok]) -> list[list[Tok]]:
    chunks: list[list[Tok]] = []
    start = 0
    for k in range(1, len(toks)):
        if toks[k].first and _starts_command(toks, k):
            chunks.append(toks[start:k])
            start = k
    if start < len(toks):
        chunks.append(toks[start:])
    merged: list[list[Tok]] = []
    for chunk in chunks:
        if merged and (
            _modifier_only(merged[-1])
            or (merged[-1][-1].text == "in" and merged[-1][0].text in ("set_option", "open"))
        ):
            merged[-1] = merged[-1] + chunk
        else:
            merged.append(chunk)
    return merged


class Binder:
    """One binder group of a signature, like `(a b : Nat)` or `[inst : Foo α]`."""

    __slots__ = ("names", "type_toks", "bracket", "start", "end")

    def __init__(
        self, names: list[str], type_toks: list[Tok], bracket: str, start: int, end: int
    ) -> None:
        self.names = names
        self.type_toks = type_toks
        self.bracket = bracket
        self.start = start
        self.end = end


def parse_binders(toks: list[Tok], i: int, j: int) -> tuple[list[Binder], int]:
    binders = []
    while i < j:
        t = toks[i]
        if t.text in ("(", "{", "[", "⦃", "{{"):
            close = i + _matching(toks[i:j], 0)
            inner = toks[i + 1 : close]
            colon = _find_depth0(inner, 0, {":"})
            if t.text == "[" and colon < 0:
                binders.append(Binder(["inst✝"], inner, "[", t.start, toks[close].end))
            else:
                name_toks = inner[:colon] if colon >= 0 else inner
                type_toks = inner[colon + 1 :] if colon >= 0 else []
                names = [n.text for n in name_toks if n.kind == "id" or n.text == "_"]
                binders.append(Binder(names, type_toks, t.text, t.start, toks[close].end))
            i = close + 1
        elif t.kind == "id" and t.text not in KEYWORDS:
            binders.append(Binder([t.text], [], "(", t.start, t.end))
            i += 1
        else:
            break
    return binders, i


class DeclSyntax:
    """The parts of a declaration command."""

    def __init__(self) -> None:
        self.doc: str | None = None
        self.doc_tok: Tok | None = None
        self.mods: list[str] = []
        self.attrs: list[str] = []
        self.kw: Tok | None = None
        self.name_tok: Tok | None = None
        self.binders: list[Binder] = []
        self.type_toks: list[Tok] | None = None
        self.assign: Tok | None = None
        self.body: list[Tok] = []
        self.eqns: list[list[Tok]] = []
        self.where: list[Tok] = []
        self.toks: list[Tok] = []


def parse_decl(toks: list[Tok], k: int) -> DeclSyntax:
    d = DeclSyntax()
    d.toks = toks
    i = 0
    while i < k:
        t = toks[i]
        if t.kind == "doc":
            d.doc = t.text[3:-2].strip()
            d.doc_tok = t
            i += 1
        elif t.text == "@[":
            close = _matching(toks, i)
            d.attrs.append(" ".join(x.text for x in toks[i + 1 : close]))
            i = close + 1
        else:
            d.mods.append(t.text)
            i += 1
    d.kw = toks[k]
    i = k + 1
    j = len(toks)
    if d.kw.text == "instance" and i < j and toks[i].text == "(":
        close = _matching(toks, i)
        if close + 1 < j and "priority" in {x.text for x in toks[i:close]}:
            i = close + 1
    if d.kw.text != "example" and i < j and toks[i].kind == "id" and toks[i].text not in KEYWORDS:
        d.name_tok = toks[i]
        i += 1
        if i < j and toks[i].text == ".{":
            i = _matching(toks, i) + 1
    d.binders, i = parse_binders(toks, i, j)
    if i < j and toks[i].text == ":":
        start = i + 1
        depth = 0
        i = start
        while i < j:
            s = toks[i].text
            if s in _OPENERS:
                depth += 1
            elif s in _CLOSERS:
                depth -= 1
            elif depth == 0 and (
                s in (":=", "where") or (s == "|" and toks[i].first) or s == "deriving"
            ):
                break
            i += 1
        d.type_toks = toks[start:i]
    if d.kw.text in ("structure", "class", "inductive"):
        d.where = toks[i:]
        return d
    if i < j and toks[i].text == ":=":
        d.assign = toks[i]
        d.body = toks[i + 1 :]
    elif i < j and toks[i].text == "|":
        current: list[Tok] = []
        for t in toks[i:]:
            if t.text == "|" and t.first:
                current = []
                d.eqns.append(current)
            else:
                current.append(t)
    elif i < j and toks[i].text == "where":
        d.where = toks[i:]
    return d


_TERMINATION = words("termination_by termination_by? decreasing_by")


def split_termination(toks: list[Tok]) -> tuple[list[Tok], tuple[Tok, list[Tok]] | None]:
    """A definition's value without its `termination_by` / `decreasing_by` clauses, and the
    `decreasing_by` keyword with its tactics (None without one)."""
    k = _find_depth0(toks, 0, _TERMINATION)
    if k < 0:
        return toks, None
    d = _find_depth0(toks, k, {"decreasing_by"})
    return toks[:k], ((toks[d], toks[d + 1 :]) if d >= 0 else None)


def _native_axiom_decl(name: str, goal: str) -> dict:
    """The axiom Lean 4.29+ adds for a native evaluation of `goal` (`nativeEqTrue`)."""
    return {
        "kind": "axiom",
        "type": f"decide ({goal}) = true",
        "binders": [],
        "doc": None,
        "axioms": [name],
    }


def _option_in(chunk: list[Tok], k: int) -> bool:
    """Whether the command at `k` is `set_option NAME VALUE in ...` (its costs are the inner
    command's, spent under the option)."""
    return k + 3 < len(chunk) and chunk[k].text == "set_option" and chunk[k + 3].text == "in"


def _import_error_text(module: str) -> str:
    root = module.split(".")[0]
    return (
        f"unknown module prefix '{root}'\n\nNo directory '{root}' or file '{root}.olean' in the "
        "search path entries:\n/fake-lean/lib/lean"
    )


#: Words that name no constant with axioms: keywords and tactic names (their axioms come from
#: TACTIC_AXIOMS when they run); `funext` and the like stay, being constants too.
_NOT_CONSTANTS = (
    KEYWORDS | _CLOSING_TACTICS | _NOOP_TACTICS | frozenset(_TACTICS) | frozenset(_COMBINATORS)
) - frozenset(BUILTIN_AXIOMS)


class CommandElab(Elab):
    """Elaborates a command text: a sequence of Lean commands."""

    #: heartbeats burnt per second of a command's cost (0: not counted; see `command_costs`)
    heartbeat_rate = 0.0
    #: seconds of elaboration of each top-level command, by its start offset
    costs: dict[int, float] | None = None
    #: the cost of the top-level command being elaborated, until it is spent
    pending: float | None = None
    #: report a missing import (a REPL with PRs #73/#141) instead of dropping it silently
    report_import_errors = False

    def run(self, allow_imports: bool) -> None:
        toks = self.src.toks
        chunks = split_commands(toks)
        header = allow_imports
        for chunk in chunks:
            self.pending = self.costs.get(chunk[0].start) if self.costs else None
            if chunk[0].text == "import":
                if header:
                    self.do_import(chunk)
                    continue
                self.error(
                    "invalid 'import' command, it must be used in the beginning of the file",
                    chunk[0].start,
                    chunk[-1].end,
                )
                continue
            header = False
            self.command(chunk)

    def do_import(self, chunk: list[Tok]) -> None:
        """One `import` line of the header. Lean imports the whole header at once: a module it
        cannot find fails all of it (`processHeader` falls back to an empty env, no Init)."""
        env = self.env
        if env.bare:
            return  # an earlier line already failed the header
        modules = [t.text for t in chunk[1:] if t.kind == "id"]
        missing = [m for m in modules if m.split(".")[0] not in KNOWN_MODULE_ROOTS]
        if missing:
            env.imports = ()
            env.bare = True
            if self.report_import_errors:
                # As PR #73's transcript shows it: at 1:0, without an end position.
                self.messages.append(
                    {
                        "severity": "error",
                        "pos": {"line": 1, "column": 0},
                        "endPos": None,
                        "data": _import_error_text(missing[0]),
                    }
                )
            return
        env.imports = env.imports + tuple(m for m in modules if m not in env.imports)

    def command(self, chunk: list[Tok]) -> None:
        k = 0
        while k < len(chunk) and (
            chunk[k].kind == "doc" or chunk[k].text in _MODIFIERS or chunk[k].text == "@["
        ):
            k = _matching(chunk, k) + 1 if chunk[k].text == "@[" else k + 1
        if self.pending is not None and not _option_in(chunk, k):
            seconds, self.pending = self.pending, None
            if not self.within_heartbeats(seconds, chunk):
                return
        if k >= len(chunk):
            end = chunk[-1].end
            self.error("unexpected end of input; expected command", end, end)
            return
        head = chunk[k]
        text = head.text
        if head.kind == "hash":
            self.hash_command(chunk, k)
        elif text in _DECL_KEYWORDS:
            self.declaration(parse_decl(chunk, k))
        elif text == "namespace":
            self.open_scope(chunk, "namespace")
        elif text == "section":
            self.open_scope(chunk, "section")
        elif text == "mutual":
            env = self.env
            env.scopes.append(_scope("mutual", "", env.scope["ns"], env.scope))
        elif text == "end":
            self.end_scope(chunk)
        elif text == "open":
            self.open_command(chunk)
        elif text == "variable":
            binders, _ = parse_binders(chunk, k + 1, len(chunk))
            scope = self.env.scope
            scope["vars"] = scope["vars"] + [
                [
                    b.names,
                    self.pp(b.type_toks) if b.type_toks else "?",
                    b.bracket,
                    self.src.slice(chunk),
                ]
                for b in binders
            ]
        elif text in ("universe", "universes"):
            scope = self.env.scope
            scope["levels"] = scope["levels"] + [t.text for t in chunk[k + 1 :]]
        elif text == "set_option":
            self.set_option(chunk, k)
        elif text in _IGNORED_COMMANDS:
            return
        else:
            self.parse_error(head)

    def within_heartbeats(self, seconds: float, chunk: list[Tok]) -> bool:
        """Spend a command's elaboration time under Lean's `maxHeartbeats` for it (options of
        `set_option ... in` included); False when Lean stops it (the error is on it)."""
        limit = self.option("maxHeartbeats")
        limit = DEFAULT_MAX_HEARTBEATS if limit is None else int(limit)
        if limit and seconds * self.heartbeat_rate > limit:
            spend(limit / self.heartbeat_rate)
            module = self.option("debug.moduleNameAtTimeout") is not False
            data = heartbeat_error(limit, module, self.option("diagnostics") is True)
            self.error(data, chunk[0].start, chunk[-1].end)
            return False
        spend(seconds)
        return True

    def parse_error(self, t: Tok) -> None:
        if t.kind == "id" and t.text not in KEYWORDS and t.text not in _COMMAND_KEYWORDS:
            data = "unexpected identifier; expected command"
        else:
            data = f"unexpected token '{t.text}'; expected command"
        self.error(data, t.start, t.end)

    # -- scopes ----------------------------------------------------------------------------

    def open_scope(self, chunk: list[Tok], kind: str) -> None:
        env = self.env
        name = chunk[1].text if len(chunk) > 1 and chunk[1].kind == "id" else ""
        ns = env.scope["ns"]
        if kind == "namespace":
            name = name[7:] if name.startswith("_root_.") else name
            for part in name.split("."):
                ns = f"{ns}.{part}" if ns else part
                env.scopes.append(_scope(kind, part, ns, env.scope))
            return
        env.scopes.append(_scope(kind, name, ns, env.scope))

    def end_scope(self, chunk: list[Tok]) -> None:
        env = self.env
        name = chunk[1].text if len(chunk) > 1 and chunk[1].kind == "id" else ""
        parts = name.split(".") if name else [""]
        for part in reversed(parts):
            if len(env.scopes) <= 1:
                self.error("invalid 'end', insufficient scopes", chunk[0].start, chunk[-1].end)
                return
            scope = env.scope
            if scope["name"] != part:
                if scope["name"] and not part:
                    msg = f"invalid 'end', name is missing (expected {scope['name']})"
                elif not scope["name"]:
                    msg = "invalid 'end', name mismatch (expected nothing)"
                else:
                    msg = f"invalid 'end', name mismatch (expected {scope['name']})"
                self.error(msg, chunk[0].start, chunk[-1].end)
            env.scopes.pop()

    def open_command(self, chunk: list[Tok]) -> None:
        in_k = _find_depth0(chunk, 1, {"in"})
        names = [t for t in chunk[1 : in_k if in_k > 0 else len(chunk)] if t.kind == "id"]
        names = [t for t in names if t.text not in ("scoped", "hiding", "renaming", "in")]
        env = self.env
        resolved = []
        for t in names:
            ns = t.text
            candidates = [ns]
            cur = env.scope["ns"]
            while cur:
                candidates.insert(0, f"{cur}.{ns}")
                cur = cur.rpartition(".")[0]
            full = next((c for c in candidates if env.is_namespace(c)), None)
            if full is None:
                self.error(f"unknown namespace '{ns}'", t.start, t.end)
                continue
            resolved.append(full)
        if in_k > 0:
            scope = env.scope
            saved = scope["opens"]
            scope["opens"] = saved + resolved
            try:
                self.command(chunk[in_k + 1 :])
            finally:
                env.scope["opens"] = saved
            return
        env.scope["opens"] = env.scope["opens"] + resolved

    def set_option(self, chunk: list[Tok], k: int) -> None:
        if k + 2 >= len(chunk):
            self.error("unexpected end of input", chunk[-1].end, chunk[-1].end)
            return
        name_tok, value_tok = chunk[k + 1], chunk[k + 2]
        end = value_tok.end
        name = name_tok.text
        kind = option_kind(name)
        if kind is None:
            self.error(f"unknown option '{name}'", chunk[k].start, end)
            value = None
        elif (kind == _BOOL_OPTION) != (value_tok.text in ("true", "false")):
            self.error("type mismatch at set_option", chunk[k].start, end)
            value = None
        else:
            value = value_tok.text == "true" if kind == _BOOL_OPTION else int(value_tok.text)
        rest = chunk[k + 3 :]
        if rest and rest[0].text == "in":
            saved = dict(self.extra_opts)
            if value is not None:
                self.extra_opts[name] = value
            try:
                if len(rest) > 1:
                    self.command(rest[1:])
            finally:
                self.extra_opts = saved
            return
        if value is not None:
            scope = self.env.scope
            scope["opts"] = {**scope["opts"], name: value}

    # -- #commands -------------------------------------------------------------------------

    def hash_command(self, chunk: list[Tok], k: int) -> None:
        head = chunk[k]
        args = chunk[k + 1 :]
        text = head.text
        query = DOCSTRING_QUERY.search(self.src.text, chunk[0].start, chunk[-1].end)
        if query is not None:
            doc = self.docstring(query.group(1))
            if doc:
                self.info(doc, head.start, head.end)
            return
        if text == "#eval" or text == "#reduce":
            self.eval_command(head, args)
        elif text == "#check":
            self.check_command(head, args)
        elif text == "#print":
            self.print_command(head, args)
        elif text in ("#exit", "#help", "#lint", "#synth", "#guard", "#guard_msgs", "#find"):
            return
        else:
            self.parse_error(head)

    def docstring(self, name: str) -> str | None:
        found = self.env.resolve(name)
        if found is None:
            return None
        return found[1].get("doc")

    def eval_command(self, head: Tok, args: list[Tok]) -> None:
        if LEAN_VERSION and [t.text for t in args] == ["Lean.versionString"]:
            self.info(encode_string(LEAN_VERSION), head.start, head.end)
            return
        if not args:
            self.error("unexpected end of input", head.end, head.end)
            return
        if not self.check_term(args, ()) or not self.check_bare_numerals(args):
            return
        toks = args
        io_print = toks[0].text in ("IO.println", "IO.print", "println")
        if io_print:
            toks = toks[1:]
        try:
            e = parse_expr(toks)
            ty = infer_type(e, self.env, {})
            value = Evaluator(self.env, nat=ty in (None, "Nat", "ℕ")).run(e, {})
        except EvalFailure as exc:
            self.error(str(exc), head.start, head.end)
            return
        except (Unsupported, RecursionError):
            self.info(self.pp(args), head.start, head.end)
            return
        if io_print:
            out = value if isinstance(value, str) else lean_repr(value)
        else:
            out = lean_repr(value)
        self.info(out, head.start, head.end)

    def signature(self, full: str, decl: dict) -> str:
        if decl.get("builtin"):
            return full + decl["sig"]
        parts = [full]
        for names, ty, bracket, *_ in decl.get("binders", ()):
            if bracket == "[":
                parts.append(f"[{ty}]" if names == ["inst✝"] else f"[{' '.join(names)} : {ty}]")
            else:
                close = {"(": ")", "{": "}", "⦃": "⦄", "{{": "}}"}[bracket]
                parts.append(f"{bracket}{' '.join(names)} : {ty}{close}")
        return " ".join(parts) + " : " + (decl.get("type") or "?")

    def check_command(self, head: Tok, args: list[Tok]) -> None:
        if not args:
            self.error("unexpected end of input", head.end, head.end)
            return
        if len(args) == 1 and args[0].kind == "id":
            found = self.env.resolve(args[0].text)
            if found is not None:
                self.info(self.signature(*found), head.start, head.end)
                return
        if not self.check_term(args, ()) or not self.check_bare_numerals(args):
            return
        try:
            e = parse_expr(args)
        except Unsupported:
            e = None
        if e is not None and e[0] == "asc" and e[1] == ("var", "rfl", e[1][2]):
            sides = split_top(e[2], "=")
            if sides:
                self.info(f"rfl : {sides[0]} = {sides[0]}", head.start, head.end)
                return
        ty = infer_type(e, self.env, {}) if e is not None else None
        shown = self.pp(args)
        if e is not None and e[0] == "asc":
            shown = self.pp(toks_of(self.src.slice(args))[1:-1])
            shown = shown.rpartition(" : ")[0] or shown
        if self.option("pp.numericTypes") and ty and e is not None and e[0] == "num":
            shown = f"({shown} : {ty})"
        self.info(f"{shown} : {ty or 'Sort ?u'}", head.start, head.end)

    def print_command(self, head: Tok, args: list[Tok]) -> None:
        if args and args[0].text == "axioms" and len(args) > 1:
            self.print_axioms(head, args[1])
            return
        if len(args) != 1 or args[0].kind != "id":
            if args and args[0].kind == "str":
                self.info(json.loads(args[0].text), head.start, head.end)
                return
            self.error("unexpected token; expected identifier", head.end, head.end)
            return
        found = self.env.resolve(args[0].text)
        if found is None:
            self.error(f"Unknown constant `{args[0].text}`", args[0].start, args[0].end)
            return
        full, decl = found
        if decl.get("builtin"):
            printed = decl.get("print") or f"{decl['kind']} {full}{decl['sig']}"
            if self.option("pp.universes"):
                printed = printed.replace("List α", "List.{u} α")
        else:
            printed = self.print_decl(full, decl)
        self.info(printed, head.start, head.end)

    def print_axioms(self, head: Tok, name: Tok) -> None:
        """`#print axioms NAME` as Lean's `printAxiomsOf` (src/Lean/Elab/Print.lean) words it:
        one info on the `#print` token, the axioms sorted by `Name.lt`."""
        found = self.constant_axioms(name.text)
        if found is None:
            # Lean 4.2x-4.3x `throwUnknownConstant...`: "Unknown constant `{.ofConstName c}`",
            # on the identifier (older Lean: "unknown constant 'c'").
            self.error(f"Unknown constant `{name.text}`", name.start, name.end)
            return
        full, axioms = found
        if axioms:
            listed = ", ".join(axioms)
            self.info(f"'{full}' depends on axioms: [{listed}]", head.start, head.end)
        else:
            self.info(f"'{full}' does not depend on any axioms", head.start, head.end)

    def print_decl(self, full: str, decl: dict) -> str:
        kind = decl["kind"]
        binders = decl.get("binders", ())
        ty = decl.get("type") or "?"
        for names, bty, *_ in reversed(binders):
            if kind == "theorem":
                ty = f"∀ ({' '.join(names)} : {bty}), {ty}"
            elif any(n in {t.text for t in toks_of(ty)} for n in names):
                ty = f"({' '.join(names)} : {bty}) → {ty}"
            else:
                ty = " → ".join([parenthesize(bty)] * len(names) + [ty])
        keyword = {"theorem": "theorem", "abbrev": "@[reducible] def", "axiom": "axiom"}.get(
            kind, "def" if kind in ("def", "instance", "opaque") else kind
        )
        value = decl.get("value")
        if value is None or kind in ("structure", "inductive", "class", "axiom"):
            return f"{keyword} {full} : {ty}"
        params = [n for names, *_ in binders for n in names]
        if params:
            value = f"fun {' '.join(params)} => {value}"
        return f"{keyword} {full} : {ty} :=\n{value}"

    # -- declarations ----------------------------------------------------------------------

    def declaration(self, d: DeclSyntax) -> None:
        env = self.env
        kind = "theorem" if d.kw.text == "lemma" else d.kw.text
        name_tok = d.name_tok
        full = None
        if name_tok is not None:
            full = env.qualify(name_tok.text)
            if env.get(full) is not None or full in BUILTINS:
                self.error(f"`{full}` has already been declared", name_tok.start, name_tok.end)
                return
        elif kind == "instance":
            full = env.qualify(
                "inst" + "".join(t.text for t in (d.type_toks or []) if t.kind == "id")
            )
        binders = self.section_vars(d) + [
            [b.names, self.pp(b.type_toks) if b.type_toks else "?", b.bracket] for b in d.binders
        ]
        binders = self.auto_bound(d, binders) + binders
        hyps = tuple((n, ty) for names, ty, br in binders for n in names)
        locals_ = {h[0] for h in hyps}
        target = self.pp(d.type_toks) if d.type_toks is not None else None
        body, decreasing = split_termination(d.body)
        if d.eqns:
            d.eqns[-1], decreasing = split_termination(d.eqns[-1])
        value_text = None
        self.explicit_sorry = False
        self.synthetic_sorry = False
        self.tactic_axioms = set()
        self.native_calls = []
        self.self_ref = name_tok.text if name_tok is not None else None
        decl: dict = {"kind": kind, "binders": binders, "doc": d.doc}
        if kind in ("structure", "class", "inductive"):
            decl["axioms"] = self.declaration_axioms(d, kind, full, locals_)
            self.inductive(d, full, decl, target)
            return
        self_recursive = (
            name_tok is not None
            and not d.eqns
            and not any(b.bracket == "(" for b in d.binders)
            and any(t.kind == "id" and t.text in (name_tok.text, full) for t in body)
        )
        if self_recursive:
            self.error(
                f"fail to show termination for\n  {full}\nwith errors\nfailed to infer structural "
                "recursion:\nno parameters suitable for structural recursion\n\nwell-founded "
                f"recursion cannot be used, `{full}` does not take any (non-fixed) arguments",
                name_tok.start,
                name_tok.end,
            )
            self.synthetic_sorry = True
        elif d.eqns:
            decl["eqns"] = []
            for eqn in d.eqns:
                arrow = _find_depth0(eqn, 0, {"=>"})
                if arrow < 0:
                    continue
                pats = [self.src.slice(p) for p in _split_depth0(eqn[:arrow], ",")]
                decl["eqns"].append([pats, self.src.slice(eqn[arrow + 1 :])])
                if any(t.text == "sorry" for t in eqn[arrow + 1 :]):
                    for t in eqn[arrow + 1 :]:
                        if t.text == "sorry":
                            self.record_sorry(Goal(target or "?", hyps), t.start, t.end)
        elif d.assign is None and not d.where and kind in ("axiom", "opaque"):
            pass  # an axiom has no value; an opaque may omit it (Lean uses `default`)
        elif d.assign is None and not d.where:
            end = d.toks[-1].end
            self.error("unexpected end of input; expected ':=', 'where' or '|'", end, end)
            self.synthetic_sorry = True
        elif not body and d.assign is not None:
            end = d.assign.end
            self.error("unexpected end of input", end, end)
            self.synthetic_sorry = True
        elif body:
            value_text = self.src.slice(body)
            if target is None:
                try:
                    target = infer_type(parse_expr(body), env, dict(hyps))
                except Unsupported:
                    target = None
            self.body(d, body, Goal(target or "?", hyps), locals_)
        if decreasing is not None:
            self.decreasing_by(d, body, decreasing, hyps)
        if d.where:
            self.field_sorries(d, hyps)
        decl["type"] = target
        decl["value"] = value_text
        decl["sorry"] = self.explicit_sorry or self.synthetic_sorry
        decl["axioms"] = self.declaration_axioms(d, kind, full, locals_)
        if self.explicit_sorry:
            where = name_tok or d.kw
            self.message("warning", "declaration uses `sorry`", where.start, where.end)
        # An anonymous instance gets Lean's generated name (`instInhabitedFoo`).
        if full is not None and (name_tok is not None or env.get(full) is None):
            env.add(full, decl)
            natives = native_axioms(full, [tactic for tactic, _ in self.native_calls])
            # One per call since 4.29; before, shared library axioms (not declared here).
            for axiom, (_, goal) in zip(natives, self.native_calls, strict=False):
                if axiom.startswith(full + "._native."):
                    env.add(axiom, _native_axiom_decl(axiom, goal))
        if self.want_declarations:
            self.declarations.append(self.declaration_info(d, kind, full))

    want_declarations = False

    # -- axioms, termination proofs, instance fields ---------------------------------------

    def declaration_axioms(
        self, d: DeclSyntax, kind: str, full: str | None, locals_: set[str]
    ) -> list[str]:
        """What `#print axioms` lists for the declaration just elaborated: its sorry, the
        axioms of the tactics that ran, of the constants it mentions (transitively: theirs
        were collected when they were declared), native evaluations, itself if an axiom."""
        found = set(self.tactic_axioms)
        if self.explicit_sorry or self.synthetic_sorry:
            found.add("sorryAx")
        if kind == "axiom" and full is not None:
            found.add(full)
        start = next(k for k, t in enumerate(d.toks) if t is d.kw)  # attributes name no terms
        names = {t.text for t in d.toks[start + 1 :] if t.kind == "id"}
        if "sorry" in names:
            found.add("sorryAx")
        if d.name_tok is not None:
            names.discard(d.name_tok.text)  # itself (a recursive call): not a constant yet
        for name in names - _NOT_CONSTANTS:
            if name.split(".", 1)[0] not in locals_:
                found.update(self.mentioned_axioms(name))
        if full is not None:
            found.update(native_axioms(full, [tactic for tactic, _ in self.native_calls]))
        return sorted(found, key=name_order)

    def mentioned_axioms(self, name: str) -> list[str]:
        """Axioms of the constant an identifier names; `h.trans`, `cheat.elim`: of the
        longest prefix that is a constant (field notation)."""
        while True:
            found = self.constant_axioms(name, loose=True)
            if found is not None:
                return found[1]
            if "." not in name:
                return []
            name = name.rpartition(".")[0]

    def constant_axioms(self, name: str, loose: bool = False) -> tuple[str, list[str]] | None:
        """The full name and axioms of the constant `name` resolves to here; None if there
        is none. `loose` takes any `Classical.*` name for a built-in one."""
        env = self.env
        found = env.resolve(name)
        if found is not None:
            full, decl = found
            return full, builtin_axioms(full) if decl.get("builtin") else decl_axioms(decl)
        if env.bare:
            return None
        builtin = _MATHLIB_CONSTANTS if env.mathlib else _CORE_CONSTANTS
        for full in [name, *(f"{o}.{name}" for o in env.scope["opens"])]:
            if full in builtin or (loose and full.startswith("Classical.")):
                return full, builtin_axioms(full)
        return None

    def decreasing_by(
        self, d: DeclSyntax, body: list[Tok], clause: tuple[Tok, list[Tok]], hyps: tuple
    ) -> None:
        """Run `decreasing_by TACTICS` on the termination goal of the recursive call."""
        keyword, tactics = clause
        target = "?"
        params = [n for b in d.binders if b.bracket == "(" for n in b.names]
        calls = [
            k
            for k, t in enumerate(body[:-1])
            if d.name_tok is not None and t.text == d.name_tok.text
        ]
        if calls and params:
            k = calls[0] + 1
            end = _matching(body, k) + 1 if body[k].text == "(" else k + 1
            target = self.pp(f"{strip_parens(self.src.slice(body[k:end]))} < {params[0]}")
        self.run_by_block(keyword, tactics, Goal(target, hyps), root=False)

    def field_sorries(self, d: DeclSyntax, hyps: tuple) -> None:
        """A `sorry` in a `where` field of an instance or definition: its goal is the field's
        type (when the fake knows the class), like Lean's."""
        cls = next((t.text for t in d.type_toks or () if t.kind == "id"), "")
        for line in _split_lines(d.where[1:] if d.where[0].text == "where" else d.where):
            assign = _find_depth0(line, 0, {":="})
            if assign <= 0:
                continue
            field = self.env.get(f"{cls}.{line[0].text}") if cls else None
            ty = field.get("type") if field else None
            for t in line[assign + 1 :]:
                if t.text == "sorry":
                    self.record_sorry(Goal(ty or "?", hyps), t.start, t.end)

    def section_vars(self, d: DeclSyntax) -> list:
        variables = self.env.scope["vars"]
        if not variables:
            return []
        mentioned = {t.text for t in d.toks}
        out = []
        for names, ty, bracket, *_ in variables:
            if any(n in mentioned for n in names) or (
                bracket == "[" and any(t.text in mentioned for t in toks_of(ty))
            ):
                out.append([names, ty, bracket])
        return out

    def auto_bound(self, d: DeclSyntax, binders: list) -> list:
        """Unbound names in the signature: auto-bound implicits, or errors without autoImplicit."""
        bound = {n for names, *_ in binders for n in names} | set(self.env.scope["levels"])
        if d.name_tok is not None:
            bound.add(d.name_tok.text)
        sig = [t for b in d.binders for t in b.type_toks] + list(d.type_toks or [])
        if any(t.text in _BINDING_TOKENS for t in sig):
            return []
        found: list[Tok] = []
        for k, t in enumerate(sig):
            if t.kind != "id" or "." in t.text or t.text in bound or self.known(t.text, ()):
                continue
            if k > 0 and sig[k - 1].text in ("Type", "Sort"):
                continue
            if all(t.text != f.text for f in found):
                found.append(t)
        if not found:
            return []
        if self.option("autoImplicit") is False:
            for t in found:
                self.error(f"Unknown identifier `{t.text}`", t.start, t.end)
            self.synthetic_sorry = True
            return []
        type_like = {t.text for k, t in enumerate(sig) if k > 0 and sig[k - 1].text == ":"}
        type_like |= {b.type_toks[0].text for b in d.binders if len(b.type_toks) == 1}
        out: list = []
        values = [t.text for t in found if t.text not in type_like]
        for t in found:
            if t.text in type_like:
                out.append([[t.text], "Sort u_1", "{"])
        if values:
            out.append([["α✝"], "Sort u_1", "{"])
            out.append([values, "α✝", "{"])
        return out

    def body(self, d: DeclSyntax, body: list[Tok], goal: Goal, locals_: set[str]) -> None:
        texts = [t.text for t in body]
        if texts[0] == "by":
            region = body[1:]
            cmd_col = d.toks[0].col
            cut = next(
                (k for k, t in enumerate(region) if t.first and t.col <= cmd_col), len(region)
            )
            self.run_by_block(body[0], region[:cut], goal, root=True)
            if cut < len(region):
                self.parse_error(region[cut])
            return
        if texts == ["sorry"]:
            self.record_sorry(goal, body[0].start, body[0].end)
            return
        if texts == ["_"]:
            self.error(
                f"don't know how to synthesize placeholder\ncontext:\n{goal.text()}",
                body[0].start,
                body[0].end,
            )
            self.synthetic_sorry = True
            return
        nested = [k for k, t in enumerate(body) if t.text == "by"]
        if nested:
            k = nested[0]
            end = len(body)
            depth = 0
            for m in range(k + 1, len(body)):
                s = body[m].text
                if s in _OPENERS:
                    depth += 1
                elif s in _CLOSERS:
                    if depth == 0:
                        end = m
                        break
                    depth -= 1
                elif depth == 0 and s == ",":
                    end = m
                    break
            for t in body[:k]:
                if t.text == "sorry":
                    self.record_sorry(goal, t.start, t.end)
            self.run_by_block(body[k], body[k + 1 : end], goal, root=True)
            return
        for t in body:
            if t.text == "sorry":
                self.record_sorry(goal, t.start, t.end)
        if not self.check_term(body, locals_ | ({d.name_tok.text} if d.name_tok else set())):
            self.synthetic_sorry = True
            return
        if not self.check_reference(body, goal):
            self.synthetic_sorry = True
            return
        if texts == ["rfl"] and evaluate_prop(goal.target, self.env) is False:
            sides = split_top(goal.target, "=")
            lhs = sides[0] if sides else goal.target
            self.error(
                f"type mismatch\n  rfl\nhas type\n  {lhs} = {lhs} : Prop\nbut is expected to "
                f"have type\n  {goal.target} : Prop",
                body[0].start,
                body[0].end,
            )
            self.synthetic_sorry = True

    def check_reference(self, body: list[Tok], goal: Goal) -> bool:
        """A value that is just a constant (`@foo`, or `foo` without implicit arguments) must
        have the expected type up to definitional equality (`defeq_form`), as Lean's
        `ensureHasType` checks; else Lean's type mismatch. False when it does not."""
        explicit = len(body) == 2 and body[0].text == "@"
        if not (explicit or len(body) == 1) or body[-1].kind != "id" or goal.target == "?":
            return True
        if goal.hyps:
            return True  # the expected type mentions the declaration's own binders
        found = self.env.resolve(body[-1].text)
        if found is None or found[1].get("builtin") or not found[1].get("type"):
            return True
        decl = found[1]
        if not explicit and any(b[2] != "(" for b in decl.get("binders", ())):
            return True  # implicit arguments get instantiated: not modelled
        actual = self.pp(closed_type(decl))
        expected = goal.target
        if defeq_form(actual, self.env) == defeq_form(expected, self.env):
            return True
        self.error(
            f"type mismatch\n  {self.src.slice(body)}\nhas type\n  {actual} : Prop\n"
            f"but is expected to have type\n  {expected} : Prop",
            body[0].start,
            body[-1].end,
        )
        return False

    def inductive(self, d: DeclSyntax, full: str | None, decl: dict, target: str | None) -> None:
        if full is None:
            return
        decl["type"] = target or "Type"
        self.env.add(full, decl)
        lines = d.where[1:] if d.where and d.where[0].text == "where" else d.where
        fields: list[tuple[str, str]] = []
        if d.kw.text == "inductive":
            for part in _split_lines_at(lines, "|"):
                if part and part[0].kind == "id":
                    colon = _find_depth0(part, 1, {":"})
                    ty = self.pp(part[colon + 1 :]) if colon > 0 else full
                    self.env.add(
                        f"{full}.{part[0].text}",
                        {"kind": "constructor", "type": ty, "binders": [], "doc": None},
                    )
        else:
            for line in _split_lines(lines):
                colon = _find_depth0(line, 0, {":"})
                if colon <= 0 or line[0].text == "deriving":
                    continue
                assign = _find_depth0(line, colon, {":="})
                ty = self.pp(line[colon + 1 : assign if assign > 0 else len(line)])
                for t in line[:colon]:
                    if t.kind == "id":
                        fields.append((t.text, ty))
                        self.env.add(
                            f"{full}.{t.text}",
                            {"kind": "def", "type": ty, "binders": [], "doc": None},
                        )
            self.env.add(
                f"{full}.mk",
                {
                    "kind": "constructor",
                    "type": full,
                    "binders": [[[n], ty, "("] for n, ty in fields],
                    "doc": None,
                },
            )
        if self.want_declarations:
            self.declarations.append(self.declaration_info(d, d.kw.text, full))

    # -- `declarations: true` (fork) ---------------------------------------------------------

    def range_json(self, start: int, end: int) -> dict:
        return {"synthetic": False, "start": self.src.pos(start), "finish": self.src.pos(end)}

    def part_json(self, toks: list[Tok], text: str | None = None) -> dict:
        seen: list[str] = []
        for t in toks:
            if t.kind == "id" and t.text not in KEYWORDS and t.text not in seen:
                seen.append(t.text)
        return {
            "pp": text if text is not None else self.src.slice(toks),
            "constants": seen,
            "range": self.range_json(toks[0].start, toks[-1].end),
        }

    def declaration_info(self, d: DeclSyntax, kind: str, full: str | None) -> dict:
        kinds = {"def": "definition", "lemma": "theorem"}
        scope = self.env.scope
        name = d.name_tok.text if d.name_tok else "_example"
        first = d.toks[0]
        sig_toks: list[Tok] = []
        if d.binders:
            sig_toks = [t for t in d.toks if d.binders[0].start <= t.start]
        elif d.type_toks:
            sig_toks = [t for t in d.toks if t.start >= d.type_toks[0].start - 2]
        if d.assign is not None:
            sig_toks = [t for t in sig_toks if t.start < d.assign.start]
        if d.type_toks:
            colon = [t for t in d.toks if t.end <= d.type_toks[0].start and t.text == ":"]
            if colon and not d.binders:
                sig_toks = [colon[-1], *d.type_toks]
        info = {
            "pp": self.src.slice(d.toks),
            "range": self.range_json(first.start, d.toks[-1].end),
            "scope": {
                "varDecls": sorted({v[3] for v in scope["vars"] if len(v) > 3}),
                "includeVars": [],
                "omitVars": [],
                "levelNames": list(scope["levels"]),
                "currNamespace": scope["ns"] or "[anonymous]",
                "openDecl": [{"simple": {"namespace": o, "except": []}} for o in scope["opens"]],
            },
            "name": name,
            "fullName": full or name,
            "kind": kinds.get(kind, kind),
            "modifiers": {
                "docString": None
                if d.doc_tok is None
                else {
                    "content": d.doc,
                    "range": self.range_json(d.doc_tok.start, d.doc_tok.end),
                },
                "visibility": "private"
                if "private" in d.mods
                else ("public" if "public" in d.mods else "regular"),
                "computeKind": "noncomputable"
                if "noncomputable" in d.mods
                else ("meta" if "meta" in d.mods else "regular"),
                "recKind": "partial"
                if "partial" in d.mods
                else ("nonrec" if "nonrec" in d.mods else "default"),
                "isProtected": "protected" in d.mods,
                "isUnsafe": "unsafe" in d.mods,
                "attributes": d.attrs,
            },
            "signature": self.part_json(sig_toks) if sig_toks else None,
            "binders": None,
            "type": self.part_json(d.type_toks) if d.type_toks else None,
            "value": None,
        }
        if d.binders:
            btoks = [t for t in d.toks if d.binders[0].start <= t.start < d.binders[-1].end]
            info["binders"] = {
                "pp": self.src.slice(btoks),
                "groups": [self.src.text[b.start : b.end] for b in d.binders],
                "map": [
                    {
                        "id": n,
                        "type": pp_toks(b.type_toks),
                        "binderInfo": {"(": "default", "{": "implicit", "[": "instImplicit"}.get(
                            b.bracket, "strictImplicit"
                        ),
                    }
                    for b in d.binders
                    for n in b.names
                ],
                "range": self.range_json(d.binders[0].start, d.binders[-1].end),
            }
        if d.assign is not None and d.body:
            info["value"] = self.part_json(
                [d.assign, *d.body], self.src.text[d.assign.start : d.body[-1].end]
            )
        return info


def _split_lines(toks: list[Tok]) -> list[list[Tok]]:
    out: list[list[Tok]] = []
    for t in toks:
        if t.first or not out:
            out.append([t])
        else:
            out[-1].append(t)
    return out


def _split_lines_at(toks: list[Tok], bar: str) -> list[list[Tok]]:
    out: list[list[Tok]] = []
    for t in toks:
        if t.text == bar:
            out.append([])
        elif out:
            out[-1].append(t)
    return out


# ---------------------------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------------------------

FAULT_LINE = re.compile(r"^[ \t]*#fake_(\w+)[ \t]*([^\n]*)$", re.M)
_HELD_MEMORY: list[bytearray] = []


# ---------------------------------------------------------------------------------------------
# Heartbeats: Lean's deterministic limit on the work of one command
# ---------------------------------------------------------------------------------------------

#: `maxHeartbeats`'s default (Lean's `register_builtin_option maxHeartbeats`), in thousands.
DEFAULT_MAX_HEARTBEATS = 200000


def heartbeat_error(limit: int, module_name: bool = True, diagnostics: bool = False) -> str:
    """Lean's message when a command burns `limit` (thousands of) heartbeats.

    `throwMaxHeartbeat` (src/Lean/CoreM.lean): the text, then `MessageData.note` and Lean's
    `useDiagnosticMsg` hint (left out under `set_option diagnostics true`), each after a blank
    line; `debug.moduleNameAtTimeout false` drops the " at `whnf`".
    """
    at = " at `whnf`" if module_name else ""
    text = (
        f"(deterministic) timeout{at}, maximum number of heartbeats ({limit}) has been reached"
        "\n\nNote: Use `set_option maxHeartbeats <num>` to set the limit."
    )
    if not diagnostics:
        text += (
            "\n\nHint: Additional diagnostic information may be available using the "
            "`set_option diagnostics true` command."
        )
    return text


def _set_options(entries: object) -> dict:
    """The fork's `setOptions` (`[[["Elab", "async"], true], ...]`) as option name -> value."""
    options: dict = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list):
            options[".".join(map(str, entry[0]))] = entry[1]
    return options


def command_costs(
    src: Source, timed: list[tuple[int, float]], char_cost: float, reused: int
) -> tuple[dict[int, float], float]:
    """Seconds of elaboration of each top-level command (by its start offset), and the rest.

    A command costs the characters from its start to the next command's (past the reused
    prefix) and the timed fault lines inside it, or before it and after the previous command
    (those after the last command go to the last). Imports, and text with no command, are the
    rest: not heartbeats.
    """
    chunks = [c for c in split_commands(src.toks) if c[0].text != "import"]
    rest = char_cost * (len(src.text) - reused)
    if not chunks:
        return {}, rest + sum(seconds for _, seconds in timed)
    costs: dict[int, float] = {}
    for i, chunk in enumerate(chunks):
        start = chunk[0].start
        end = chunks[i + 1][0].start if i + 1 < len(chunks) else len(src.text)
        costs[start] = char_cost * max(0, end - max(start, reused))
        rest -= costs[start]
    last_lines = [src.pos(c[-1].end)["line"] for c in chunks]
    for line, seconds in timed:
        index = next((i for i, last in enumerate(last_lines) if line <= last), len(chunks) - 1)
        costs[chunks[index][0].start] += seconds
    return costs, max(0.0, rest)


GARBAGE = object()  # answer marker: write GARBAGE_BYTES instead of JSON


def allocate_memory(megabytes: float, seconds: float = 0.0) -> None:
    """Allocate and touch `megabytes` MiB, optionally spread over `seconds`, and keep it."""
    total = int(megabytes * 1024 * 1024)
    chunk = 4 * 1024 * 1024
    steps = max(1, (total + chunk - 1) // chunk)
    pause = seconds / steps if seconds > 0 else 0.0
    left = total
    while left > 0:
        size = min(chunk, left)
        block = bytearray(size)
        block[::4096] = b"\x01" * len(range(0, size, 4096))
        _HELD_MEMORY.append(block)
        left -= size
        if pause:
            time.sleep(pause)


def hang() -> None:
    """Never return (the process stays alive and silent, like a REPL stuck in a command)."""
    while True:
        time.sleep(3600)


def spend(seconds: float) -> None:
    """Take `seconds` of elaboration time (forever for inf)."""
    if math.isinf(seconds):
        hang()
    if seconds > 0:
        time.sleep(seconds)


def crash(code: int, reason: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"INTERNAL PANIC: {reason}\n")
    sys.stderr.flush()
    os._exit(code)


def run_faults(text: str, timed: list[tuple[int, float]] | None = None) -> tuple[str, bool]:
    """Execute `#fake_*` lines; return the text with them blanked and whether to send garbage.

    With a `timed` list, `#fake_sleep` / `#fake_hang` lines are not slept here but appended to it
    as (line number, seconds; inf for a hang), for the heartbeat model to charge to a command.
    """
    if "#fake_" not in text:
        return text, False
    garbage = False
    for m in FAULT_LINE.finditer(text):
        name, arg = m.group(1), m.group(2).split()
        try:
            if timed is not None and name in ("hang", "sleep"):
                seconds = math.inf if name == "hang" else float(arg[0])
                timed.append((text.count("\n", 0, m.start()) + 1, seconds))
            elif name == "crash":
                crash(int(arg[0]) if arg else 1, "fake_repl crash requested by #fake_crash")
            elif name == "hang":
                hang()
            elif name == "sleep":
                time.sleep(float(arg[0]))
            elif name == "garbage":
                garbage = True
            elif name == "stderr":
                count = int(arg[0])
                line = b"fake_repl stderr noise " + b"x" * 56 + b"\n"
                full, rest = divmod(count, len(line))
                err = sys.stderr.buffer
                for _ in range(full):
                    err.write(line)
                err.write(line[:rest])
                err.flush()
            elif name == "memory":
                allocate_memory(float(arg[0]), float(arg[1]) if len(arg) > 1 else 0.0)
        except (IndexError, ValueError):
            continue
    blanked = FAULT_LINE.sub("", text)
    return blanked, garbage


# ---------------------------------------------------------------------------------------------
# The REPL: requests, ids, pickles, costs
# ---------------------------------------------------------------------------------------------


def lean_io_error(exc: OSError, path: str) -> str:
    gist = os.strerror(exc.errno) if exc.errno else str(exc)
    gist = gist[:1].lower() + gist[1:]
    return f"{gist} (error code: {exc.errno})\n  file: {path}"


def _nat(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_fields(req: dict, spec: dict) -> bool:
    """`spec` maps field -> (required, check); extra fields are ignored like Lean's FromJson."""
    for key, (required, check) in spec.items():
        if key not in req or req[key] is None:
            if required:
                return False
            continue
        if not check(req[key]):
            return False
    return True


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _opt_bool(v: object) -> bool:
    return isinstance(v, bool)


def request_kinds(flavor: str) -> list[tuple[str, dict]]:
    """Request kinds in the order the REPL tries them, with the fields each one reads.

    Upstream has no `declarations`, `incrementality` or `setOptions`: there they are unknown
    fields, ignored whatever their value.
    """
    options = {
        "env": (False, _nat),
        "allTactics": (False, _opt_bool),
        "rootGoals": (False, _opt_bool),
        "infotree": (False, _is_str),
    }
    if flavor == "fork":
        options["declarations"] = (False, _opt_bool)
        options["incrementality"] = (False, _opt_bool)
        options["setOptions"] = (False, lambda v: isinstance(v, list))
    return [
        ("proof_step", {"proofState": (True, _nat), "tactic": (True, _is_str)}),
        ("pickle_env", {"env": (True, _nat), "pickleTo": (True, _is_str)}),
        ("unpickle_env", {"unpickleEnvFrom": (True, _is_str)}),
        ("pickle_proof_state", {"proofState": (True, _nat), "pickleTo": (True, _is_str)}),
        ("unpickle_proof_state", {"unpickleProofStateFrom": (True, _is_str), "env": (False, _nat)}),
        ("command", {"cmd": (True, _is_str), **options}),
        ("file", {"path": (True, _is_str), **options}),
    ]


class Repl:
    """State of the fake REPL process: envs and proof states, numbered from 0."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.kinds = request_kinds(opts.flavor)
        self.envs: list[Env] = []
        self.proof_states: list[ProofState] = []
        self.earlier: dict[object, set[str]] = {}
        #: the fork's header cache: options a header was first elaborated with
        self.header_opts: dict[str, dict] = {}
        self.requests = 0
        self.started = time.time()
        self.log = open(opts.log, "a", encoding="utf-8") if opts.log else None  # noqa: SIM115

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, query: str) -> dict | object | None:
        """Answer one query (already stripped of the blank line); None means no answer."""
        self.requests += 1
        try:
            req = json.loads(query)
        except ValueError as exc:
            req = None
            error = exc
        if self.log is not None:
            entry = {
                "pid": os.getpid(),
                "t": time.time(),
                "elapsed": time.time() - self.started,
                "request": req if req is not None else query,
            }
            self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.log.flush()
        if self.opts.crash_after and self.requests >= self.opts.crash_after:
            crash(1, f"fake_repl crash requested by --crash-after {self.opts.crash_after}")
        if query.startswith("#") or query.startswith("--"):
            return None
        if req is None:
            pos = getattr(error, "pos", 0)
            what = "unexpected end of input" if pos >= len(query.rstrip()) else "unexpected input"
            self.die({"message": f"Could not parse JSON:\noffset {pos}: {what}"})
        kind = None
        if isinstance(req, dict):
            for name, spec in self.kinds:
                if _check_fields(req, spec):
                    kind = name
                    break
        if kind is None:
            missing = "path" if isinstance(req, dict) else "object expected"
            self.die(
                {
                    "message": f"Could not parse as a valid JSON command:\nproperty not found: "
                    f"{missing}"
                }
            )
        return getattr(self, kind)(req)

    def die(self, error: dict) -> None:
        crash_text = "uncaught exception: " + render_json(error)
        sys.stdout.flush()
        sys.stderr.write(crash_text + "\n")
        sys.stderr.flush()
        os._exit(1)

    # -- costs -----------------------------------------------------------------------------

    def charge(
        self,
        text: str,
        parent: object,
        incremental: bool,
        imports_end: int,
        per_command: bool = False,
    ) -> int:
        """Sleep like Lean would take to elaborate `text` (minus what the fork can reuse).

        With `per_command` only the imports are paid here: the heartbeat model charges the
        characters to the commands they belong to. Returns the length of the reused prefix.
        """
        opts = self.opts
        if not opts.char_cost and not opts.import_cost:
            return 0
        reused = 0
        if incremental and opts.flavor == "fork":
            earlier = self.earlier.setdefault(parent, set())
            for old in earlier:
                reused = max(reused, _common_prefix(old, text))
            earlier.add(text)
        cost = 0.0 if per_command else opts.char_cost * (len(text) - reused)
        if imports_end > reused:
            cost += opts.import_cost
        if cost > 0:
            time.sleep(cost)
        return reused

    def session_env(self, req: dict, src: Source, imports_end: int) -> Env:
        """The env a command without `env` starts from: a new session, whose options are the
        fork's `setOptions` (a header seen before, with incrementality, keeps its first ones)."""
        env = Env()
        if self.opts.flavor != "fork":
            return env
        options = _set_options(req.get("setOptions"))
        if req.get("incrementality"):
            key = " ".join(t.text for t in src.toks if t.end <= imports_end)
            options = self.header_opts.setdefault(key, options)
        env.scope["opts"] = dict(options)
        return env

    # -- requests --------------------------------------------------------------------------

    def command(self, req: dict, text: str | None = None) -> dict | object:
        env_id = req.get("env")
        if env_id is not None and env_id >= len(self.envs):
            return {"message": "Unknown environment."}
        if text is None:
            text = req["cmd"]
        metered = self.opts.heartbeat_rate > 0
        timed: list[tuple[int, float]] | None = [] if metered else None
        text, garbage = run_faults(text, timed)
        fork = self.opts.flavor == "fork"
        src = Source(text)
        imports_end = _header_end(src.toks) if env_id is None else 0
        base = self.envs[env_id] if env_id is not None else self.session_env(req, src, imports_end)
        incremental = bool(req.get("incrementality"))
        reused = self.charge(text, env_id, incremental, imports_end, metered)
        if garbage:
            return GARBAGE
        el = CommandElab(src, base.derive())
        el.record_tactics = bool(req.get("allTactics")) or bool(req.get("infotree"))
        el.want_root_goals = bool(req.get("rootGoals"))
        el.want_declarations = fork and bool(req.get("declarations"))
        el.report_import_errors = self.opts.report_import_errors
        if metered:
            el.heartbeat_rate = self.opts.heartbeat_rate
            el.costs, outside = command_costs(src, timed or [], self.opts.char_cost, reused)
            spend(outside)
        el.run(allow_imports=env_id is None)
        return self.command_response(req, el)

    def command_response(self, req: dict, el: Elab) -> dict:
        env = el.env
        sorries = []
        for goal, start, end, self_ref in el.sorries:
            sorries.append(self.sorry_json(goal, el, start, end, self_ref))
        for goal, start, self_ref in el.root_goals:
            sorries.append(self.sorry_json(goal, el, start, start, self_ref))
        tactics = []
        if req.get("allTactics"):
            for record in el.tactics:
                goals, tac = record.before, record.tac
                ps = self.new_proof_state(ProofState(goals, False, env, record.self_ref))
                tactics.append(
                    {
                        "pos": el.src.pos(tac.start),
                        "endPos": el.src.pos(tac.end),
                        "goals": goals_text(goals),
                        "tactic": el.src.text[tac.start : tac.end],
                        "proofState": ps,
                        "usedConstants": [
                            t.text for t in tac.toks if t.kind == "id" and env.resolve(t.text)
                        ],
                    }
                )
        self.envs.append(env)
        resp: dict = {"env": len(self.envs) - 1}
        if el.messages:
            resp["messages"] = el.messages
        if sorries:
            resp["sorries"] = sorries
        if tactics:
            resp["tactics"] = tactics
        if el.declarations:
            resp["declarations"] = el.declarations
        tree_kind = req.get("infotree")
        if tree_kind in ("full", "tactics", "original", "substantive") and el.tactics:
            resp["infotree"] = [self.tactic_node(el, record) for record in el.tactics]
        return resp

    def tactic_node(self, el: Elab, record: TacticRecord) -> dict:
        tac = record.tac
        head = tac.head
        return {
            "node": {
                "stx": {
                    "range": {
                        "synthetic": False,
                        "start": el.src.pos(tac.start),
                        "finish": el.src.pos(tac.end),
                    },
                    "pp": el.src.text[tac.start : tac.end],
                    "kind": f"Lean.Parser.Tactic.{head}",
                    "argKinds": [head],
                },
                "name": f"Lean.Parser.Tactic.{head}",
                "goalsBefore": [g.text() for g in record.before],
                "goalsAfter": [g.text() for g in record.after],
            },
            "kind": "TacticInfo",
            "children": [],
        }

    def sorry_json(self, goal: Goal, el: Elab, start: int, end: int, self_ref: str | None) -> dict:
        ps = self.new_proof_state(ProofState([goal], False, el.env, self_ref))
        entry = {"proofState": ps, "goal": goal.text()}
        if not el.tactic_mode:
            entry["pos"] = el.src.pos(start)
            entry["endPos"] = el.src.pos(end)
        return entry

    def new_proof_state(self, state: ProofState) -> int:
        self.proof_states.append(state)
        return len(self.proof_states) - 1

    def file(self, req: dict) -> dict | object:
        path = req["path"]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            return {"message": lean_io_error(exc, path)}
        if req.get("env") is not None and req["env"] >= len(self.envs):
            return {"message": "Unknown environment."}
        return self.command(req, text)

    def proof_step(self, req: dict) -> dict | object:
        n = req["proofState"]
        if n >= len(self.proof_states):
            return {"message": "Unknown proof state."}
        state = self.proof_states[n]
        text, garbage = run_faults(req["tactic"])
        self.charge(text, None, False, 0)
        if garbage:
            return GARBAGE
        src = Source(text)
        el = Elab(src, state.env, tactic_mode=True)
        el.self_ref = state.self_ref
        try:
            if not src.toks:
                raise TacticError("<input>:1:0: unexpected end of input", 0, 0)
            goals = el.run_seq(split_block(src.toks), list(state.goals))
        except TacticError as exc:
            return {"message": "Lean error:\n" + exc.message}
        sorry = state.sorry or el.explicit_sorry or el.synthetic_sorry
        sorries = [self.sorry_json(g, el, s, e, ref) for g, s, e, ref in el.sorries]
        new = ProofState(goals, sorry, state.env, state.self_ref)
        new.error = state.error
        if state.self_ref and any(t.text == state.self_ref for t in src.toks):
            new.error = SELF_REFERENCE_STATUS
        return self.proof_step_response(new, el.messages, sorries)

    def proof_step_response(self, state: ProofState, messages: list, sorries: list) -> dict:
        ps = self.new_proof_state(state)
        resp: dict = {"proofState": ps, "goals": [g.text() for g in state.goals]}
        if messages:
            resp["messages"] = messages
        if sorries:
            resp["sorries"] = sorries
        resp["proofStatus"] = state.status()
        return resp

    def pickle_env(self, req: dict) -> dict:
        n = req["env"]
        if n >= len(self.envs):
            return {"message": "Unknown environment."}
        self.write_pickle(req["pickleTo"], {"fake_repl": "env", "env": self.envs[n].to_json()})
        return {"env": n}

    def unpickle_env(self, req: dict) -> dict:
        data = self.read_pickle(req["unpickleEnvFrom"], "env")
        env = Env.from_json(data["env"])
        if env.imports:
            self.charge("", None, False, 1)
        self.envs.append(env)
        return {"env": len(self.envs) - 1}

    def pickle_proof_state(self, req: dict) -> dict:
        n = req["proofState"]
        if n >= len(self.proof_states):
            return {"message": "Unknown proof State."}
        state = self.proof_states[n]
        self.write_pickle(
            req["pickleTo"],
            {
                "fake_repl": "proofState",
                "goals": [g.to_json() for g in state.goals],
                "sorry": state.sorry,
                "selfRef": state.self_ref,
                "env": state.env.to_json(),
            },
        )
        return self.proof_step_response(state, [], [])

    def unpickle_proof_state(self, req: dict) -> dict:
        env_id = req.get("env")
        if env_id is not None and env_id >= len(self.envs):
            return {"message": "Unknown environment."}
        data = self.read_pickle(req["unpickleProofStateFrom"], "proofState")
        env = self.envs[env_id] if env_id is not None else Env.from_json(data["env"])
        if env_id is None and env.imports:
            self.charge("", None, False, 1)
        goals = [Goal.from_json(g) for g in data["goals"]]
        state = ProofState(goals, data["sorry"], env, data.get("selfRef"))
        return self.proof_step_response(state, [], [])

    def write_pickle(self, path: str, data: dict) -> None:
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
        except OSError as exc:
            self.die({"message": lean_io_error(exc, path)})

    def read_pickle(self, path: str, kind: str) -> dict:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as exc:
            self.die({"message": lean_io_error(exc, path)})
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("fake_repl") != kind:
            self.die({"message": f"failed to read file '{path}', invalid header"})
        return data


def _header_end(toks: list[Tok]) -> int:
    """End offset of the leading `import` lines (0 when there are none)."""
    end = 0
    k = 0
    while k < len(toks) and toks[k].text == "import":
        end = toks[k].end
        k += 1
        while k < len(toks) and toks[k].kind == "id" and not toks[k].first:
            end = toks[k].end
            k += 1
    return end


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by binary search on slices (fast for long texts)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ---------------------------------------------------------------------------------------------
# Main loop
# ---------------------------------------------------------------------------------------------

GARBAGE_BYTES = b"fake_repl: this is not JSON <<<garbage>>>\n\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra = os.environ.get("FAKE_REPL_ARGS")
    if extra:
        import shlex

        args += shlex.split(extra)
    opts = parse_options(args)
    global LEAN_VERSION
    LEAN_VERSION = opts.lean_version.removeprefix("v")
    sys.setrecursionlimit(20000)
    if opts.memory_baseline:
        allocate_memory(opts.memory_baseline)
    repl = Repl(opts)
    readline = sys.stdin.buffer.readline
    out = sys.stdout.buffer
    parts: list[str] = []
    while True:
        raw = readline()
        line = raw.decode("utf-8", "replace")
        if raw and line.strip(" \t\r\n\f\v"):
            parts.append(line.rstrip(" \t\r\n\f\v"))
            continue
        if not raw and not parts:
            return 0
        query = "".join(parts) if parts else line
        parts = []
        answer = repl.handle(query)
        if answer is GARBAGE:
            out.write(GARBAGE_BYTES)
            out.flush()
        elif answer is not None:
            out.write((render_json(answer) + "\n\n").encode("utf-8"))
            out.flush()
        if not raw:
            return 0


if __name__ == "__main__":
    sys.exit(main())
