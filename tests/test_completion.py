"""Completion, inspection and is_complete: what a user sees on Tab, Shift-Tab and Enter."""

from __future__ import annotations

import pytest

from lean_kernel.text.abbreviations import ABBREVIATIONS, expand, matching
from lean_kernel.text.completion import (
    COMMANDS,
    KEYWORDS,
    TACTICS,
    CompleteCheck,
    CompletionResult,
    check_complete,
    complete,
    name_at,
)
from lean_kernel.text.syntax import declared_names, is_id_first, is_id_rest, mask


def at_end(code: str, names: tuple[str, ...] = ()) -> CompletionResult:
    return complete(code, len(code), names)


# --- the abbreviation table ------------------------------------------------------------------


def test_table_has_at_least_300_abbreviations_all_to_unicode():
    assert len(ABBREVIATIONS) >= 300
    for abbreviation, symbol in ABBREVIATIONS.items():
        assert abbreviation and not any(c.isspace() for c in abbreviation)
        assert symbol
        if abbreviation != "setminus":  # Lean's set difference is the ASCII `\`
            assert not symbol.isascii(), abbreviation


@pytest.mark.parametrize(
    ("abbreviation", "symbol"),
    [
        # Greek
        ("alpha", "α"), ("a", "α"), ("beta", "β"), ("b", "β"), ("gamma", "γ"), ("g", "γ"),
        ("delta", "δ"), ("epsilon", "ε"), ("e", "ε"), ("mu", "μ"), ("pi", "π"), ("phi", "φ"),
        ("omega", "ω"), ("Gamma", "Γ"), ("Delta", "Δ"), ("Omega", "Ω"),
        ("Pi", "Π"), ("Sigma", "Σ"), ("lam", "λ"), ("fun", "λ"), ("lambda", "λ"),
        # arrows
        ("to", "→"), ("r", "→"), ("->", "→"), ("r-", "→"), ("l", "←"), ("gets", "←"),
        ("<-", "←"), ("iff", "↔"), ("lr", "↔"), ("mapsto", "↦"), ("u", "↑"), ("d", "↓"),
        ("r=", "⇒"), ("hom", "⟶"), ("-->", "⟶"), ("hookrightarrow", "↪"),
        # logic
        ("forall", "∀"), ("all", "∀"), ("exists", "∃"), ("ex", "∃"), ("and", "∧"),
        ("or", "∨"), ("not", "¬"), ("neg", "¬"), ("n", "¬"), ("top", "⊤"), ("bot", "⊥"),
        ("|-", "⊢"), ("vdash", "⊢"),
        # relations
        ("le", "≤"), ("ge", "≥"), ("ne", "≠"), ("approx", "≈"), ("sim", "∼"), ("cong", "≅"),
        ("equiv", "≃"), ("==", "≡"), ("subseteq", "⊆"), ("ss", "⊆"), ("sub", "⊂"),
        ("in", "∈"), ("notin", "∉"), ("nin", "∉"), ("dvd", "∣"),
        # sets and orders
        ("cup", "∪"), ("cap", "∩"), ("empty", "∅"), ("Union", "⋃"), ("Inter", "⋂"),
        ("setminus", "\\"), ("compl", "ᶜ"), ("sup", "⨆"), ("inf", "⨅"), ("sqcup", "⊔"),
        ("sqcap", "⊓"),
        # number systems, blackboard, script, fraktur
        ("N", "ℕ"), ("Z", "ℤ"), ("Q", "ℚ"), ("R", "ℝ"), ("C", "ℂ"), ("bbN", "ℕ"),
        ("bbR", "ℝ"), ("bbk", "𝕜"), ("bbA", "𝔸"), ("McA", "𝒜"), ("McF", "ℱ"), ("MfA", "𝔄"),
        ("Mfg", "𝔤"),
        # operators
        ("circ", "∘"), ("o", "∘"), ("comp", "∘"), ("times", "×"), ("x", "×"), ("cdot", "·"),
        (".", "·"), ("sum", "∑"), ("prod", "∏"), ("infty", "∞"), ("t", "▸"), ("smul", "•"),
        ("norm", "‖"), ("^-1", "⁻¹"), ("inv", "⁻¹"),
        # brackets
        ("langle", "⟨"), ("<", "⟨"), ("rangle", "⟩"), (">", "⟩"), ("<<", "⟪"), (">>", "⟫"),
        ("[[", "⟦"), ("]]", "⟧"), ("{{", "⦃"), ("}}", "⦄"), ("f<", "‹"), ("f>", "›"),
        # sub- and superscripts
        ("0", "₀"), ("1", "₁"), ("9", "₉"), ("_0", "₀"), ("_1", "₁"), ("_i", "ᵢ"),
        ("^1", "¹"), ("^2", "²"), ("^n", "ⁿ"), ("^op", "ᵒᵖ"),
    ],
)  # fmt: skip
def test_key_abbreviations_give_lean_symbols(abbreviation, symbol):
    assert expand(abbreviation) == symbol


def test_unknown_abbreviation_expands_to_nothing():
    assert expand("no_such_abbreviation") is None


def test_prefix_matching_lists_each_symbol_once():
    symbols = [symbol for _, symbol in matching("su")]
    assert len(symbols) == len(set(symbols))
    assert "⊂" in symbols and "⊆" in symbols and "∑" in symbols


# --- completing abbreviations ----------------------------------------------------------------


def test_backslash_al_offers_alpha_first():
    result = at_end("variable (x : \\al")
    assert result.matches[0] == "α"
    assert result.matches[:3] == ["α", "∀", "ℵ"]
    assert result.cursor_start == len("variable (x : ")
    assert result.cursor_end == len("variable (x : \\al")


def test_exact_abbreviation_comes_first():
    assert at_end("\\alpha").matches == ["α"]
    assert at_end("\\l").matches[0] == "←"
    assert at_end("\\le").matches[0] == "≤"
    assert at_end("\\in").matches[0] == "∈"
    assert at_end("\\N").matches[0] == "ℕ"
    assert at_end("h\\1").matches[0] == "₁"


def test_abbreviation_metadata_names_the_abbreviation():
    result = at_end("\\alpha")
    [entry] = result.metadata["_jupyter_types_experimental"]
    assert entry == {
        "text": "α",
        "type": "\\alpha",
        "start": 0,
        "end": 6,
        "signature": "\\alpha → α",
    }


def test_abbreviation_completion_respects_cursor_in_the_middle():
    code = "theorem t (x : \\to) : True := trivial"
    cursor = code.index("\\to") + 3
    result = complete(code, cursor, [])
    assert result.matches[0] == "→"
    assert (result.cursor_start, result.cursor_end) == (code.index("\\to"), cursor)


def test_abbreviation_completion_after_unicode_text_uses_str_indices():
    code = "example (α β : Type) (f : α \\r"
    result = at_end(code)
    assert result.matches[0] == "→"
    assert code[result.cursor_start :] == "\\r"


def test_text_after_backslash_that_is_no_abbreviation_falls_back_to_names():
    result = at_end("a \\ simp")
    assert "simp" in result.matches
    assert result.cursor_start == len("a \\ ")


# --- completing identifiers ------------------------------------------------------------------


def test_keywords_complete():
    result = at_end("theo")
    assert result.matches == ["theorem"]
    assert (result.cursor_start, result.cursor_end) == (0, 4)


def test_tactics_complete_inside_a_proof():
    code = "example : 1 + 1 = 2 := by\n  norm_n"
    result = at_end(code)
    assert result.matches == ["norm_num"]
    assert result.cursor_start == code.index("norm_n")
    assert result.metadata["_jupyter_types_experimental"][0]["type"] == "tactic"


def test_exact_match_first_then_notebook_names_then_alphabetical():
    result = at_end("  simp", ("simplify",))
    assert result.matches[0] == "simp"
    assert result.matches[1] == "simplify"
    assert result.matches[2:] == sorted(result.matches[2:], key=str.lower)


def test_keywords_first_at_top_level_tactics_first_in_a_proof():
    assert at_end("exa").matches[:2] == ["example", "exact"]
    assert at_end("theorem t : True := by\n  exa").matches[:2] == ["exact", "exact?"]
    assert at_end("theorem t : True := by exa").matches[0] == "exact"
    assert at_end("example : True ∧ True := by\n  constructor <;> exa").matches[0] == "exact"


def test_hash_commands_complete():
    result = at_end("#ch")
    assert result.matches == ["#check", "#check_failure"]
    assert result.cursor_start == 0
    assert at_end("#").matches == sorted(COMMANDS)


def test_notebook_names_complete():
    result = at_end("#eval myF", ("myFunction", "other"))
    assert result.matches == ["myFunction"]
    assert result.cursor_start == len("#eval ")


def test_namespaced_names_complete_in_full_and_after_a_dot():
    names = ("Nat.sum_two", "Foo.Nat.sub_self", "Nat.mul_thing")
    assert at_end("#check Nat.su", names).matches == ["Nat.sub_self", "Nat.sum_two"]
    result = at_end("#check Nat.su", names)
    assert result.cursor_start == len("#check ")
    assert at_end("#check sum", names).matches == ["sum_two"]
    assert at_end("#check Nat.", names).matches == ["Nat.mul_thing", "Nat.sub_self", "Nat.sum_two"]


def test_unicode_identifiers_complete():
    code = "#check h₁ ∧ fα"
    result = at_end(code, ("fα₂", "h₁"))
    assert result.matches == ["fα₂"]
    assert result.cursor_start == code.index("fα")
    result = at_end("#check h", ("h₁", "h'"))
    assert result.matches[:2] == ["h'", "h₁"]


def test_completion_respects_cursor_before_end_of_code():
    code = "theorem t : True := by\n  exa\n  done"
    cursor = code.index("exa") + 3
    result = complete(code, cursor, [])
    assert result.matches[0] == "exact"
    assert (result.cursor_start, result.cursor_end) == (cursor - 3, cursor)


def test_empty_prefix_offers_everything_but_no_empty_match():
    matches = at_end("#check ", ("", "Foo.bar")).matches
    assert "" not in matches
    assert {"Foo.bar", "bar", "theorem", "simp"} <= set(matches)


def test_numbers_get_no_completions():
    assert at_end("#eval 12").matches == []


def test_completion_is_deterministic():
    names = ["b_name", "a_name", "Z.a_name"]
    first = at_end("a", tuple(names)).matches
    assert at_end("a", tuple(reversed(names))).matches == first


def test_tactic_and_keyword_lists_are_real_and_sized():
    assert len(TACTICS) >= 100
    for word in ("intro", "exact", "simp", "rw", "linarith", "omega", "norm_num", "aesop"):
        assert word in TACTICS
    for word in ("theorem", "def", "where", "namespace", "by"):
        assert word in KEYWORDS


# --- name_at (inspection) --------------------------------------------------------------------


def test_name_at_finds_dotted_name_under_cursor():
    code = "#check Nat.succ_le_succ x"
    assert name_at(code, code.index("succ")) == ("Nat.succ_le_succ", 7, 23)
    assert name_at(code, 23) == ("Nat.succ_le_succ", 7, 23)


def test_name_at_unicode_and_projection():
    code = "exact h₁.trans hα'"
    assert name_at(code, len(code)) == ("hα'", code.index("hα'"), len(code))
    assert name_at("exact x.1", 7) == ("x", 6, 7)


def test_name_at_nothing_there():
    assert name_at("1 + 2", 2) is None
    assert name_at("", 0) is None


# --- is_complete -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "def f := 1",
        "#eval 1 + 1",
        "theorem t : True := by trivial",
        "example : Type* := Nat",
        "example (h : p) : p := by simp at *",
        '#eval "("',
        "#eval '('",
        "-- (",
        "/- ( -/ #eval 1",
        "/- nested /- ( -/ still comment -/ #eval 1",
        'def s := ","',
        '#eval s!"{"("} x"',
        "theorem t : True := by\n  trivial\n  ",
        "",
    ],
)
def test_complete_inputs(code):
    assert check_complete(code).status == "complete"


@pytest.mark.parametrize(
    "code",
    [
        "/- unclosed",
        "/- a /- b -/ still open",
        '#eval "unclosed',
        "#eval (1 +",
        "#check [1, 2",
        "example : ∃ n, n = 1 := ⟨1",
        "structure P where\n  x : Nat := {",
        "def f (n : Nat) : Nat :=",
        "theorem t : True := by",
        "structure Point where",
        "match n with",
        "fun x =>",
        "def f : IO Unit := do",
        "if h then",
        "if h then 1 else",
        "obtain ⟨x, hx⟩ ←",
        "#check [1,",
        "theorem t : p ∧",
        "theorem t : p ∨",
        "theorem t : p →",
        "theorem t : p ↔",
        "#eval 1 +",
        "#eval 2 *",
        "def f := 1 -- ends := in a comment :=\ndef g :=",
        "theorem t : True := by -- comment\n",
        "theorem t : True := by\n  trivial",
    ],
)
def test_incomplete_inputs(code):
    assert check_complete(code).status == "incomplete"


@pytest.mark.parametrize("code", ["#eval 1)", "#check ]", "(1 + 2]", "⟨1, 2)", "def f := }"])
def test_invalid_inputs(code):
    assert check_complete(code).status == "invalid"


def test_brackets_in_comments_and_strings_do_not_count():
    assert check_complete('#eval ")"').status == "complete"
    assert check_complete("-- )").status == "complete"
    assert check_complete("/- ) -/ #eval 1").status == "complete"
    assert check_complete("#eval ')'").status == "complete"
    assert check_complete('#eval r#"("#').status == "complete"


def test_indent_hint_for_console():
    assert check_complete("def f :=").indent == "  "
    assert check_complete("theorem t : True := by\n  constructor\n  · intro x =>").indent == "    "
    assert check_complete("theorem t : True := by\n  trivial").indent == "  "
    assert check_complete("def f := 1").indent == ""


# --- declared names --------------------------------------------------------------------------

CELL = """
namespace Geometry
/-- A point. -/
structure Point where
  x : Nat
  y : Nat
deriving Repr

@[simp] theorem Point.ext' : True := trivial
private def helper (n : Nat) := n
noncomputable abbrev origin : Point := ⟨0, 0⟩
lemma silly : 1 = 1 := rfl
-- def commented := 1
def str := "def not_a_def := 2"

inductive Shape where
  | circle (r : Nat)
  | square : Nat → Shape

section Inner
instance : Inhabited Point := ⟨origin⟩
instance (priority := low) namedInst : Inhabited Shape := ⟨.circle 1⟩
end Inner
end Geometry

def _root_.Nat.double (n : Nat) := 2 * n
def top := 1
class Pretty (α : Type) where
  pretty : α → String
class inductive Tag | a | b
structure Pair where
  mkPair ::
  a : Nat
axiom choice_ax : True
deriving instance BEq for Geometry.Point
"""


def test_declared_names_follow_namespaces_and_skip_comments_and_strings():
    assert declared_names(CELL) == [
        "Geometry.Point",
        "Geometry.Point.mk",
        "Geometry.Point.ext'",
        "Geometry.helper",
        "Geometry.origin",
        "Geometry.silly",
        "Geometry.str",
        "Geometry.Shape",
        "Geometry.Shape.circle",
        "Geometry.Shape.square",
        "Geometry.namedInst",
        "Nat.double",
        "top",
        "Pretty",
        "Pretty.mk",
        "Tag",
        "Tag.a",
        "Tag.b",
        "Pair",
        "Pair.mkPair",
        "choice_ax",
    ]


def test_declared_names_feed_completion():
    names = declared_names(CELL)
    assert at_end("#check Geometry.Shape.c", tuple(names)).matches == ["Geometry.Shape.circle"]
    assert at_end("#check Shape.sq", tuple(names)).matches == ["Shape.square"]


def test_declared_names_tolerate_broken_code():
    assert declared_names("def") == []
    assert declared_names("end end namespace") == []
    assert declared_names("/- unclosed def x := 1") == []


# --- the lexer -------------------------------------------------------------------------------


def test_identifier_characters_follow_lean():
    for c in "aZ_αβℕ𝒜𝕜":
        assert is_id_first(c), c
    for c in "λΠΣ0₁'!?":
        assert not is_id_first(c), c
    for c in "0₁ᵢ'!?":
        assert is_id_rest(c), c


def test_mask_keeps_positions():
    code = 'def s := "a(b" -- c\n/- d -/ x'
    masked = mask(code)
    assert len(masked.text) == len(code)
    assert masked.text.count("\n") == 1
    assert "(" not in masked.text and "c" not in masked.text.split("\n")[0][15:]
    assert masked.text.endswith(" x")


# --- is_complete for `jupyter console`: multi-line cells typed line by line ------------------


def typed(lines: list[str]) -> list[tuple[str, str]]:
    """What the console asks on each Enter while `lines` are typed: (status, indent) per line."""
    replies = []
    for k in range(len(lines)):
        check = check_complete("\n".join(lines[: k + 1]))
        replies.append((check.status, check.indent))
    return replies


def test_definition_by_cases_waits_for_its_cases_until_a_blank_line():
    lines = ["def sumTo : Nat → Nat", "  | 0 => 0", "  | n + 1 => (n + 1) + sumTo n", "  "]
    assert typed(lines) == [
        ("incomplete", "  "),  # a signature without a body: the cases come next
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("complete", ""),  # the blank line runs it, as one cell
    ]


def test_cases_at_column_zero_also_wait():
    assert typed(["def f : Nat → Nat", "| 0 => 1", "| _ => 2", ""]) == [
        ("incomplete", "  "),
        ("incomplete", ""),
        ("incomplete", ""),
        ("complete", ""),
    ]


@pytest.mark.parametrize(
    "signature",
    [
        "def sumTo : Nat → Nat",
        "theorem add_zero' (n : Nat) : n + 0 = n",
        "lemma foo : True",
        "example : 2 + 2 = 4",
        "abbrev N : Type",
        "instance : Inhabited Nat",
        "instance (priority := low) : Inhabited Nat",
        "@[simp] private theorem t (x : Nat := 1) : x = x",
        "noncomputable def g : Nat → Nat",
        "theorem abs_form : 0 ≤ |a|",
        "theorem long (a : Nat)\n    (h : a = 1)",
    ],
)
def test_a_declaration_without_its_body_is_incomplete(signature):
    assert check_complete(signature).status == "incomplete"


@pytest.mark.parametrize(
    "code",
    [
        "structure Empty'",
        "inductive Void",
        "class Marker (α : Type)",
        "axiom ax : False",
        "opaque secret : Nat",
        "def sumTo : Nat → Nat\n  | 0 => 0\n  | n + 1 => sumTo n\n\n#eval sumTo 10",
    ],
)
def test_declarations_that_may_end_at_their_signature_are_complete(code):
    assert check_complete(code).status == "complete"


def test_theorem_by_tactics_runs_as_one_cell():
    lines = [
        "theorem double_add' (a b : Nat) : double (a + b) = double a + double b := by",
        "  unfold double",
        "  omega",
        "",
    ]
    assert typed(lines) == [
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("complete", ""),
    ]


def test_match_with_waits_for_its_alternatives():
    assert typed(["#eval match 3 with", "  | 0 => 1", "  | _ => 2", ""]) == [
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("complete", ""),
    ]


def test_where_waits_for_its_fields():
    assert typed(["structure Point where", "  x : Nat", "  y : Nat", ""]) == [
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("incomplete", "  "),
        ("complete", ""),
    ]
    lines = ["def f (n : Nat) : Nat := g n where", "  g (k : Nat) : Nat := k + 1", ""]
    assert typed(lines) == [("incomplete", "  "), ("incomplete", "  "), ("complete", "")]


@pytest.mark.parametrize(
    "code",
    [
        "def main : IO Unit := do",
        "def inc : Nat → Nat := fun",
        "theorem t (a b : Nat) (h : a = b) : a = b := calc",
        "theorem t : a = c :=\n  calc a = b := h1",
        "example : True ∧ True := by\n  constructor\n  · trivial",
        "def f : Nat → Nat\n  | 0 =>",
        "#eval (1 +\n  2",
        "/-- A docstring\n\nwith a blank line",
        "mutual",
        "mutual\n  def even : Nat → Bool\n    | 0 => true\n    | n + 1 => odd n",
    ],
)
def test_open_constructs_keep_reading(code):
    assert check_complete(code).status == "incomplete"


def test_a_closed_mutual_block_is_complete():
    code = (
        "mutual\n  def even : Nat → Bool\n    | 0 => true\n    | n + 1 => odd n\n"
        "  def odd : Nat → Bool\n    | 0 => false\n    | n + 1 => even n\nend"
    )
    assert check_complete(code).status == "complete"


def test_lean_batch_cell_reads_until_a_blank_line():
    lines = [
        "%%lean_batch -w 2",
        "theorem a : 1 + 1 = 2 := rfl",
        "----",
        "theorem b : 2 + 2 = 4 := by",
        "  decide",
        "",
    ]
    assert typed(lines) == [
        ("incomplete", ""),
        ("incomplete", ""),  # a finished command does not end the cell
        ("incomplete", ""),
        ("incomplete", "  "),  # the indent follows the command being typed
        ("incomplete", "  "),
        ("complete", ""),
    ]


@pytest.mark.parametrize(
    "code", ["#eval 1 + 1", "#check Nat.add_comm", "def double (n : Nat) := 2 * n"]
)
def test_a_finished_one_liner_runs_at_once(code):
    assert check_complete(code) == CompleteCheck("complete")
