r"""Completion, inspection targets and input checks for Lean text, without Lean.

These run on every keypress in the notebook, so they answer from tables built at import and a
small lexer (`lean_kernel.text.syntax`), never from the REPL:

- `complete`: after `\al` offer α, ∀, ℵ (Lean's unicode abbreviations, as in every Lean
  editor); elsewhere complete the identifier before the cursor from Lean keywords, tactics,
  `#commands` and the names the notebook declared.
- `name_at`: the identifier under the cursor, for `inspect` (shift-tab) requests.
- `check_complete`: whether `jupyter console` should run the input or keep reading lines
  (Jupyter's `is_complete` request), and how far to indent the next one.

Pure Python; the kernel turns the results into Jupyter replies.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from lean_kernel.text import abbreviations
from lean_kernel.text.syntax import ID_REST, IDENT_RE, is_id_first, is_id_rest, mask

KEYWORDS: tuple[str, ...] = (
    "abbrev", "at", "attribute", "axiom", "by", "calc", "catch", "class", "continue", "def",
    "deriving", "do", "decreasing_by", "elab", "elab_rules", "else", "end", "example", "export",
    "extends", "False", "finally", "for", "from", "fun", "have", "if", "import", "in",
    "include", "inductive", "infix", "infixl", "infixr", "instance", "lemma", "let", "local",
    "macro", "macro_rules", "match", "mut", "mutual", "namespace", "noncomputable", "nonrec",
    "notation", "omit", "open", "opaque", "partial", "postfix", "prefix", "private", "Prop",
    "protected", "return", "scoped", "section", "set_option", "show", "Sort", "structure",
    "suffices", "syntax", "termination_by", "then", "theorem", "True", "try", "Type",
    "universe", "unless", "unsafe", "using", "variable", "where", "with",
)  # fmt: skip

#: Tactics of Lean 4 core, Batteries and Mathlib that people type most.
TACTICS: tuple[str, ...] = (
    "abel", "absurd", "aesop", "all_goals", "and_intros", "any_goals", "apply", "apply?",
    "apply_fun", "assumption", "bound", "by_cases", "by_contra", "by_contra!", "calc", "case",
    "cases", "cases'", "change", "choose", "clear", "congr", "constructor", "continuity",
    "contradiction", "contrapose", "contrapose!", "conv", "convert", "convert_to", "decide",
    "dsimp", "exact", "exact?", "exact_mod_cast", "exacts", "exfalso", "exists", "ext",
    "field_simp", "filter_upwards", "fin_cases", "first", "focus", "fun_prop", "funext",
    "gcongr", "generalize", "group", "have", "induction", "induction'", "infer_instance",
    "injection", "interval_cases", "intro", "intros", "iterate", "left", "lift", "linarith",
    "linear_combination", "measurability", "next", "nlinarith", "noncomm_ring", "nontriviality",
    "norm_cast", "norm_num", "nth_rewrite", "nth_rw", "obtain", "omega", "peel", "polyrith",
    "positivity", "push_cast", "push_neg", "qify", "rcases", "refine", "refine'", "rel",
    "rename_i", "repeat", "revert", "rewrite", "rfl", "right", "ring", "ring_nf", "rintro",
    "rw", "rw?", "rwa", "set", "show", "simp", "simp?", "simp_all", "simp_arith", "simp_rw",
    "simpa", "skip", "sorry", "specialize", "split", "split_ifs", "subst", "subst_vars",
    "suffices", "symm", "tauto", "trans", "trivial", "try", "unfold", "use", "wlog", "zify",
)  # fmt: skip

COMMANDS: tuple[str, ...] = (
    "#check", "#check_failure", "#eval", "#exit", "#find", "#guard", "#guard_msgs", "#help",
    "#lint", "#norm_num", "#print", "#reduce", "#simp", "#synth", "#version", "#where",
)  # fmt: skip

# The order completions list kinds in; a word that is both keyword and tactic (`have`) is a tactic.
_KIND_ORDER = {"name": 0, "keyword": 1, "tactic": 2, "command": 3}
_TACTIC_FIRST = {"name": 0, "tactic": 1, "keyword": 2, "command": 3}
_VOCABULARY: dict[str, str] = {}
for _kind, _words in (("command", COMMANDS), ("keyword", KEYWORDS), ("tactic", TACTICS)):
    _VOCABULARY.update(dict.fromkeys(_words, _kind))
_SORTED_LOWER = sorted((w.lower(), w) for w in _VOCABULARY)


@dataclass(frozen=True)
class CompletionResult:
    """What to offer: `matches` replace `code[cursor_start:cursor_end]`."""

    matches: list[str]
    cursor_start: int
    cursor_end: int
    #: `_jupyter_types_experimental`: one {text, type, start, end, signature} per match
    metadata: dict[str, Any] = field(default_factory=dict)


def _types(entries: list[tuple[str, str, str]], start: int, end: int) -> dict[str, Any]:
    return {
        "_jupyter_types_experimental": [
            {"text": text, "type": kind, "start": start, "end": end, "signature": signature}
            for text, kind, signature in entries
        ]
    }


def complete(code: str, cursor_pos: int, names: Iterable[str] = ()) -> CompletionResult:
    r"""Completions at `cursor_pos` (a `str` index into `code`).

    After a backslash, `\al` offers α, ∀, ℵ (exact abbreviation first, then by popularity),
    replacing from the backslash. Otherwise the identifier before the cursor is completed from
    `names` (declared in the notebook, also by their suffix after a dot: `su` finds
    `Nat.sum_two` as `sum_two`, `Nat.su` finds `Foo.Nat.sum_two` as `Nat.sum_two`), keywords,
    tactics and `#commands`.
    """
    cursor = max(0, min(cursor_pos, len(code)))
    return _complete_abbreviation(code, cursor) or _complete_identifier(code, cursor, names)


def _complete_abbreviation(code: str, cursor: int) -> CompletionResult | None:
    line_start = code.rfind("\n", 0, cursor) + 1
    backslash = code.rfind("\\", line_start, cursor)
    if backslash < 0:
        return None
    typed = code[backslash + 1 : cursor]
    if any(c.isspace() for c in typed) or not abbreviations.is_prefix(typed):
        return None
    found = abbreviations.matching(typed)
    entries = [(symbol, f"\\{abbr}", f"\\{abbr} → {symbol}") for abbr, symbol in found]
    return CompletionResult(
        [symbol for _, symbol in found], backslash, cursor, _types(entries, backslash, cursor)
    )


def _identifier_start(code: str, cursor: int) -> int | None:
    """Start of the (possibly dotted) identifier or `#command` ending at `cursor`.

    None when the text before the cursor is a word Lean would not read as a name (`12`).
    """
    start = cursor
    while start > 0 and (is_id_rest(code[start - 1]) or code[start - 1] == "."):
        start -= 1
    while start < cursor and not is_id_first(code[start]):
        start += 1
    if start == cursor and cursor > 0 and is_id_rest(code[cursor - 1]):
        return None  # `12`: a number, nothing to complete
    if start > 0 and code[start - 1] == "#":
        start -= 1
    return start


def _complete_identifier(code: str, cursor: int, names: Iterable[str]) -> CompletionResult:
    start = _identifier_start(code, cursor)
    if start is None:
        return CompletionResult([], cursor, cursor, _types([], cursor, cursor))
    prefix = code[start:cursor]
    lower = prefix.lower()

    # candidate text -> (kind, full name)
    candidates: dict[str, tuple[str, str]] = {}
    for name in names:
        parts = name.split(".")
        for k in range(len(parts)):
            suffix = ".".join(parts[k:])
            if suffix and suffix.lower().startswith(lower) and suffix not in candidates:
                candidates[suffix] = ("name", name)
    if "." not in prefix:
        i = bisect.bisect_left(_SORTED_LOWER, (lower, ""))
        while i < len(_SORTED_LOWER) and _SORTED_LOWER[i][0].startswith(lower):
            word = _SORTED_LOWER[i][1]
            candidates.setdefault(word, (_VOCABULARY[word], word))
            i += 1

    order = _TACTIC_FIRST if _at_tactic_position(code, start) else _KIND_ORDER

    def rank(text: str) -> tuple[Any, ...]:
        kind = candidates[text][0]
        return (text != prefix, not text.startswith(prefix), order[kind], text.lower(), text)

    ordered = sorted(candidates, key=rank)
    entries = []
    for text in ordered:
        kind, full = candidates[text]
        entries.append((text, kind, full if full != text else ""))
    return CompletionResult(ordered, start, cursor, _types(entries, start, cursor))


def _at_tactic_position(code: str, start: int) -> bool:
    """Whether a word starting at `start` is where a tactic goes: first on an indented line, or
    after `by`, `·`, `;` or `<;>` (then tactics are listed before keywords)."""
    before = code[code.rfind("\n", 0, start) + 1 : start]
    stripped = before.rstrip()
    if not stripped:
        return bool(before)
    return stripped.endswith(("·", ";", "<;>")) or stripped.split()[-1] == "by"


def name_at(code: str, cursor_pos: int) -> tuple[str, int, int] | None:
    """The identifier under (or just before) the cursor, with its start and end; else None.

    `Nat.succ_le` is one name; `x.1` gives `x`; `«my name»` is read whole.
    """
    cursor = max(0, min(cursor_pos, len(code)))
    line_start = code.rfind("\n", 0, cursor) + 1
    line_end = code.find("\n", cursor)
    line_end = len(code) if line_end < 0 else line_end
    for m in IDENT_RE.finditer(code, line_start, line_end):
        if m.start() <= cursor <= m.end():
            if m.start() > 0 and is_id_rest(code[m.start() - 1]):
                continue  # the tail of `2x`-like text, not a name
            return m.group(), m.start(), m.end()
        if m.start() > cursor:
            break
    return None


# --------------------------------------------------------------------------------------------
# check_complete (Jupyter's is_complete request)

Completeness = Literal["complete", "incomplete", "invalid"]


@dataclass(frozen=True)
class CompleteCheck:
    """Whether an input can run: what a kernel answers to Jupyter's `is_complete` request."""

    #: `complete` when the code can be run as is, `incomplete` when more lines must come,
    #: `invalid` when no continuation could fix it (a bracket closes that never opened)
    status: Completeness
    #: for "incomplete": the whitespace to start the next line with
    indent: str = ""


_BRACKETS = {"(": ")", "[": "]", "{": "}", "⟨": "⟩", "⦃": "⦄", "⟦": "⟧", "⟪": "⟫", "‹": "›"}
_CLOSERS = {v: k for k, v in _BRACKETS.items()}
# Words after which a Lean command cannot end.
_CONTINUATION_WORDS = frozenset((
    "by", "where", "with", "do", "then", "else", "fun", "if", "from", "at", "calc", "match",
    "let", "have", "show", "suffices", "extends", "deriving", "using", "generalizing", "try",
    "repeat", "all_goals", "any_goals", "mut", "in", "unless", "for",
))  # fmt: skip
# Line endings after which more must come: operators, `:=`, `,` ...
_CONTINUATION_ENDINGS = (
    ":=", "=>", "<-", "←", "->", "→", "↔", "∧", "∨", "¬", "∀", "∃", "λ", ",", ":", "=", "+",
    "-", "/", "^", "%", "<", ">", "≤", "≥", "≠", "∘", "×", "·", "•", "∣", "|", "&", "$", "⊢",
    "↦", "∈", "∉", "⊆", "⊂", "∪", "∩", "≃", "≅", "≈", "∼", "≡", "⁻", "⊔", "⊓", "⟶", "▸", "⊗",
    "⊕", "∑", "∏", "⋃", "⋂", "⨆", "⨅", "\\",
)  # fmt: skip
_INDENT_STEP = "  "
# The declarations Lean rejects without a body (`:=`, `| pattern => ...` or `where`): Enter
# after `def f : Nat → Nat` waits for the `| 0 => 0` lines. (`structure`, `inductive`, `class`,
# `axiom` and `opaque` can end at their signature.)
_NEEDS_BODY = re.compile(
    r"(?:@\[[^\]]*\]\s*|(?:private|protected|noncomputable|partial|unsafe|nonrec|scoped|local)"
    f"\\s+)*(?:def|theorem|lemma|abbrev|example|instance)(?![{ID_REST}.])"
)
# Lines starting with these begin a command (at any indent: inside `mutual` they are indented),
# so the command being typed is the text from the last such line on.
_COMMAND_START = re.compile(
    r"\s*(?:#|@\[|(?:def|theorem|lemma|abbrev|example|instance|structure|class|inductive|axiom|"
    r"opaque|private|protected|noncomputable|partial|unsafe|nonrec|scoped|local|mutual|end|"
    r"namespace|section|open|set_option|variable|universe|import|attribute|export|notation|"
    f"infixl?|infixr|prefix|postfix|macro|macro_rules|syntax|elab|elab_rules)(?![{ID_REST}.]))"
)
_BODY_WORD = re.compile(f"(?<![{ID_REST}.])where(?![{ID_REST}.])")
_ALTERNATIVE = re.compile(r"\|[^|]*=>")


def check_complete(code: str) -> CompleteCheck:
    """Whether `code` is complete, incomplete or invalid, and the indent `jupyter console`
    should put on the next line when more must come.

    Incomplete: an open `/-` comment, string or bracket; a last line ending in `:=`, `by`,
    `where`, `with`, `=>`, `|`, `,`, an operator ...; a `def`/`theorem`/`instance`... still
    without its body (`def f : Nat → Nat`, its `| 0 => 0` lines to come); an open `mutual`; or
    an indented block or `| pattern => ...` lines (as in IPython, a blank line ends them, so a
    tactic proof or a definition by cases can span lines). A first line `%%magic` (a cell magic,
    e.g. `%%lean_batch`) takes every line up to a blank one, as in IPython. Comments and literals
    never count. A finished one-liner (`#eval 1 + 1`) is complete, so Enter runs it.
    """
    lines = code.split("\n")
    first = next((k for k, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].startswith("%%"):
        return _check_cell_magic(lines, first)
    masked = mask(code)
    text = masked.text
    stack: list[str] = []
    for c in text:
        if c in _BRACKETS:
            stack.append(c)
        elif c in _CLOSERS:
            if not stack or stack[-1] != _CLOSERS[c]:
                return CompleteCheck("invalid")
            stack.pop()

    lines = text.split("\n")
    content = [line for line in lines if line.strip()]
    if not content:
        return CompleteCheck("incomplete" if masked.open_comment else "complete")
    last = content[-1]
    indent = _indent_of(last)
    if masked.open_string:
        return CompleteCheck("incomplete", "")
    if masked.open_comment:
        return CompleteCheck("incomplete", indent)
    if stack or _ends_open(last.rstrip()):
        return CompleteCheck("incomplete", indent + _INDENT_STEP)
    command = _current_command(content)
    if _NEEDS_BODY.match(" ".join(command).strip()) and not _has_body(command):
        head = _indent_of(command[0])
        deeper = len(command) > 1 and len(indent) > len(head)
        return CompleteCheck("incomplete", indent if deeper else head + _INDENT_STEP)
    if _open_mutual(content):
        return CompleteCheck("incomplete", indent if indent else _INDENT_STEP)
    if lines[-1].strip() and (last.lstrip().startswith("|") or (len(lines) > 1 and indent)):
        return CompleteCheck("incomplete", indent)  # a block or `|` cases: a blank line ends it
    return CompleteCheck("complete")


def _check_cell_magic(lines: list[str], first: int) -> CompleteCheck:
    """`%%magic` takes the cell: more lines until a blank one; the indent is that of the code
    being typed under it (a tactic block in a `%%lean_batch` command)."""
    if not lines[-1].strip():
        return CompleteCheck("complete")
    rest = "\n".join(lines[first + 1 :])
    inner = check_complete(rest) if rest.strip() else CompleteCheck("complete")
    return CompleteCheck("incomplete", inner.indent if inner.status == "incomplete" else "")


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _current_command(content: list[str]) -> list[str]:
    """The (masked, non-blank) lines of the command being typed: from the last line that
    starts a command; all of them when none does."""
    for k in range(len(content) - 1, -1, -1):
        if _COMMAND_START.match(content[k]):
            return content[k:]
    return content


def _has_body(command: list[str]) -> bool:
    """Whether a declaration has reached its body: `:=`, `where` or `| p => ...` outside
    brackets (`instance (priority := low)` and `(x : Nat := 0)` are not bodies)."""
    depth = 0
    top = []
    for c in "\n".join(command):
        if c in _BRACKETS:
            depth += 1
        elif c in _CLOSERS:
            depth = max(0, depth - 1)
        top.append(c if depth == 0 and c not in _CLOSERS else " ")
    flat = "".join(top)
    return ":=" in flat or bool(_BODY_WORD.search(flat) or _ALTERNATIVE.search(flat))


def _open_mutual(content: list[str]) -> bool:
    """A `mutual` block not yet closed by its `end`."""
    for line in reversed(content):
        word = line.split()[0]
        if word in ("mutual", "end"):
            return word == "mutual"
    return False


def _ends_open(line: str) -> bool:
    if line.endswith("*"):
        # `a *` is open; `simp at *` and `Type*` are not.
        before = line[:-1]
        return before[-1:].isspace() and before.split()[-1:] != ["at"]
    if line.endswith(_CONTINUATION_ENDINGS):
        return True
    words = IDENT_RE.findall(line[-20:])
    return bool(words) and line.endswith(words[-1]) and words[-1] in _CONTINUATION_WORDS
