"""Just enough lexing of Lean 4 text for completion, inspection and `is_complete`.

No parser: the kernel needs to know where identifiers are, which brackets are real (not inside a
comment or a string), and which names a cell declares, on every keypress and without Lean.
Identifier characters follow Lean's own rules (`Lean.isLetterLike`, `isSubScriptAlnum`), so
`h₁`, `α'`, `𝕜` and `ℝ≥0`'s `ℝ` are read as Lean reads them, and `λ`, `Π`, `Σ` are not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Lean.isLetterLike: Greek (without λ, Π, Σ), Coptic, polytonic Greek, the letterlike block
# (ℕ ℝ ℓ ...) and the script/double-struck/fraktur letters.
_LETTER_LIKE = (
    "\u03b1-\u03ba\u03bc-\u03c9"
    "\u0391-\u039f\u03a1\u03a2\u03a4-\u03a9"
    "\u03ca-\u03fb"
    "\u1f00-\u1ffe"
    "\u2100-\u214f"
    "\U0001d49c-\U0001d59f"
)
# Lean.isSubScriptAlnum: ₀-₉, ₐ-ₜ, ᵢ-ᵪ, ⱼ.
_SUBSCRIPT = "\u2080-\u2089\u2090-\u209c\u1d62-\u1d6a\u2c7c"

ID_FIRST = f"A-Za-z_{_LETTER_LIKE}"
ID_REST = f"{ID_FIRST}0-9'!?{_SUBSCRIPT}"

_ID_FIRST_RE = re.compile(f"[{ID_FIRST}]")
_ID_REST_RE = re.compile(f"[{ID_REST}]")
_ATOM = f"(?:«[^»\\n]*»|[{ID_FIRST}][{ID_REST}]*)"
#: A possibly dotted Lean name: `Nat.succ_le`, `h₁`, `«my name».x`.
IDENT_RE = re.compile(f"{_ATOM}(?:\\.{_ATOM})*")


def is_id_first(char: str) -> bool:
    """Whether `char` can start a Lean identifier."""
    return _ID_FIRST_RE.match(char) is not None


def is_id_rest(char: str) -> bool:
    """Whether `char` can continue a Lean identifier (digits, `'`, `!`, `?`, subscripts too)."""
    return _ID_REST_RE.match(char) is not None


# --------------------------------------------------------------------------------------------
# Comments and strings


@dataclass(frozen=True)
class Masked:
    """Lean text with comments blanked and literal contents blanked, positions unchanged.

    Comments become spaces; string, char and «name» literals keep their delimiters and lose
    their contents, so `def s := ","` still ends with a value and `"(" ` opens no bracket.
    Newlines are kept everywhere, so line and column numbers stay those of the source.
    """

    text: str
    #: a `/-` comment runs to the end of the text
    open_comment: bool = False
    #: a string literal runs to the end of the text
    open_string: bool = False


_COMMENT_DELIMITERS = re.compile(r"/-|-/")
_INTERPOLATING = ("s!", "m!", "f!")


def _block_comment_end(code: str, start: int) -> int:
    """Index just past the `-/` closing the comment opened at `start`; -1 if unclosed.

    Lean's block comments nest: `/- a /- b -/ c -/` is one comment.
    """
    depth = 0
    for m in _COMMENT_DELIMITERS.finditer(code, start):
        depth += 1 if m.group() == "/-" else -1
        if depth == 0:
            return m.end()
    return -1


def _string_end(code: str, start: int, interpolated: bool) -> int:
    """Index just past the `"` closing the string opened at `start`; -1 if unclosed."""
    n = len(code)
    j = start + 1
    while j < n:
        c = code[j]
        if c == "\\":
            j += 2
        elif c == '"':
            return j + 1
        elif c == "{" and interpolated:
            j = _interpolation_end(code, j + 1)
            if j < 0:
                return -1
        else:
            j += 1
    return -1


def _interpolation_end(code: str, start: int) -> int:
    """Index just past the `}` closing an `s!"...{` hole; holes may hold strings and braces."""
    depth = 1
    n = len(code)
    j = start
    while j < n:
        c = code[j]
        if c == '"':
            j = _string_end(code, j, code[max(0, j - 2) : j] in _INTERPOLATING)
            if j < 0:
                return -1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return -1


_RAW_STRING = re.compile(r'r(#*)"')
_CHAR_LITERAL = re.compile(r"'(?:\\(?:[^'\n]{1,8})|[^'\\\n])'")


def mask(code: str) -> Masked:
    """Blank out comments and the insides of literals (see `Masked`)."""
    out = list(code)
    n = len(code)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < n:
        c = code[i]
        if c == "-" and code.startswith("--", i):
            j = code.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and code.startswith("/-", i):
            j = _block_comment_end(code, i)
            if j < 0:
                blank(i, n)
                return Masked("".join(out), open_comment=True)
            blank(i, j)
            i = j
        elif c == '"':
            j = _string_end(code, i, code[max(0, i - 2) : i] in _INTERPOLATING)
            if j < 0:
                blank(i + 1, n)
                return Masked("".join(out), open_string=True)
            blank(i + 1, j - 1)
            i = j
        elif (
            c == "r"
            and (i == 0 or not is_id_rest(code[i - 1]))
            and (m := _RAW_STRING.match(code, i))
        ):
            closing = '"' + m.group(1)
            j = code.find(closing, m.end())
            if j < 0:
                blank(m.end(), n)
                return Masked("".join(out), open_string=True)
            blank(m.end(), j)
            i = j + len(closing)
        elif (
            c == "'"
            and (i == 0 or not is_id_rest(code[i - 1]))
            and (m := _CHAR_LITERAL.match(code, i))
        ):
            blank(i + 1, m.end() - 1)
            i = m.end()
        elif c == "«":
            j = code.find("»", i)
            newline = code.find("\n", i)
            if j < 0 or 0 <= newline < j:
                i += 1
            else:
                blank(i + 1, j)
                i = j + 1
        else:
            i += 1
    return Masked("".join(out))


# --------------------------------------------------------------------------------------------
# Declared names

_TOKEN = re.compile(f"{IDENT_RE.pattern}|::|:=|\\S")
_NAMED_DECLARATIONS = frozenset((
    "def", "theorem", "lemma", "abbrev", "instance", "structure", "class", "inductive", "axiom",
    "opaque",
))  # fmt: skip
_TYPE_DECLARATIONS = frozenset({"structure", "class", "inductive"})


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    line_start: bool  # first thing on its line, at column 0


def _tokens(code: str) -> list[_Token]:
    masked = mask(code).text
    tokens = []
    for m in _TOKEN.finditer(masked):
        start = m.start()
        tokens.append(_Token(code[start : m.end()], start, start == 0 or masked[start - 1] == "\n"))
    return tokens


def _is_name(token: _Token | None) -> bool:
    return token is not None and IDENT_RE.fullmatch(token.text) is not None


def declared_names(code: str) -> list[str]:
    """The full names a cell declares, in order: `def`, `theorem`, `lemma`, `abbrev`,
    `instance NAME`, `structure`, `class`, `inductive`, `axiom`, `opaque`, prefixed by the
    enclosing `namespace`s, plus the constructors of inductives (`Foo.zero`) and structures
    (`Foo.mk`, or the `ctor ::` given).

    The kernel feeds these to completion; an approximation is fine, a crash is not.
    """
    tokens = _tokens(code)
    scopes: list[tuple[str, str]] = []  # ("namespace" | "section" | "mutual", name)
    names: list[str] = []

    def at(k: int) -> _Token | None:
        return tokens[k] if k < len(tokens) else None

    def same_line(a: _Token, b: _Token | None) -> bool:
        return b is not None and "\n" not in code[a.start : b.start]

    def qualify(name: str) -> str:
        if name.startswith("_root_."):
            return name[len("_root_.") :]
        prefix = [s for kind, s in scopes if kind == "namespace"]
        return ".".join([*prefix, name])

    def add(name: str) -> None:
        if name not in names:
            names.append(name)

    for k, token in enumerate(tokens):
        word = token.text
        following = at(k + 1)
        if word == "namespace" and _is_name(following):
            scopes.append(("namespace", following.text))
        elif word == "section":
            name = following.text if _is_name(following) and same_line(token, following) else ""
            scopes.append(("section", name))
        elif word == "mutual":
            scopes.append(("mutual", ""))
        elif word == "end" and scopes:
            name = following.text if _is_name(following) and same_line(token, following) else ""
            for depth in range(len(scopes) - 1, -1, -1):
                if not name or scopes[depth][1] == name:
                    del scopes[depth:]
                    break
        elif word in _NAMED_DECLARATIONS:
            previous = tokens[k - 1].text if k else ""
            if previous in ("deriving", "[") or (previous == "class" and word == "inductive"):
                continue  # `deriving instance`, `attribute [instance]`, seen with `class`
            j = k + 1
            if word == "class" and following is not None and following.text == "inductive":
                word, j = "inductive", k + 2
            if word == "instance" and (t := at(j)) is not None and t.text == "(":
                j = _skip_group(tokens, j)  # (priority := low)
            candidate = at(j)
            if not _is_name(candidate) or candidate.text in ("where", "extends", "deriving"):
                continue
            full = qualify(candidate.text)
            add(full)
            if word in _TYPE_DECLARATIONS:
                for constructor in _constructors(tokens, j + 1, word):
                    add(f"{full}.{constructor}")
    return names


def _skip_group(tokens: list[_Token], j: int) -> int:
    """Index just past the `)` matching the `(` at `j`."""
    depth = 0
    while j < len(tokens):
        if tokens[j].text == "(":
            depth += 1
        elif tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def _constructors(tokens: list[_Token], j: int, kind: str) -> list[str]:
    """Constructor names of the type declared just before `j`, up to the next command."""
    found = []
    custom = False
    while j < len(tokens):
        token = tokens[j]
        if token.line_start and token.text != "|":
            break
        following = tokens[j + 1] if j + 1 < len(tokens) else None
        if kind == "inductive" and token.text == "|" and _is_name(following):
            found.append(following.text)
        elif (
            kind != "inductive"
            and following is not None
            and following.text == "::"
            and _is_name(token)
        ):
            found.append(token.text)
            custom = True
        j += 1
    if kind != "inductive" and not custom:
        found.append("mk")
    return found


_OPENERS = "([{⦃⟨"
_CLOSERS = ")]}⦄⟩"


def top_level_index(masked: str, start: int, hit: Callable[[int], bool]) -> int:
    """The first index from ``start`` outside brackets where ``hit`` holds, in ``masked`` text
    (comments and strings blanked: ``mask``); -1 if none."""
    depth = 0
    for k in range(start, len(masked)):
        char = masked[k]
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
        elif depth == 0 and hit(k):
            return k
    return -1


def statement_colon(masked: str, start: int) -> int:
    """Where a declaration's type starts: its first top-level ``:`` from ``start`` (not
    ``:=``); -1 if none."""
    return top_level_index(
        masked, start, lambda k: masked[k] == ":" and not masked.startswith(":=", k)
    )
