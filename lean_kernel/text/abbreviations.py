r"""Lean 4's unicode input abbreviations: what `\alpha`, `\to` or `\N` turn into in an editor.

Lean users type α, →, ℕ and ⟨⟩ through these abbreviations in every editor (VS Code, Emacs,
Neovim); a notebook has to offer the same ones or it is a step back. The table follows the
meanings of the official Lean 4 table (vscode-lean4's ``abbreviations.json``) where names are
ambiguous, e.g. ``\equiv`` is ≃ (Mathlib's ``Equiv``) and ``\==`` is ≡, ``\t`` is ▸, ``\d`` is ↓.

The table below is written one symbol per line, most used symbols first, each followed by the
abbreviations that produce it (the preferred one first). The line order is the popularity order
used to rank completions, so ``\al`` offers α before ∀ (``\all``) and ℵ (``\aleph``).

Only ``\setminus`` yields an ASCII text: Lean's set difference is written with a plain ``\``.
"""

from __future__ import annotations

import bisect
from functools import lru_cache
from types import MappingProxyType

# One line per symbol, most used first: `SYMBOL abbreviation abbreviation ...`.
_TABLE = r"""
→ to r -> rightarrow imp r-
← l gets <- leftarrow l-
↔ iff lr <-> leftrightarrow lr-
α alpha a
β beta b be
γ gamma g ga
δ delta de
ε epsilon e ep eps varepsilon
λ lambda lam fun la
∀ forall all
∃ exists ex
∧ and wedge land
∨ or vee lor
¬ not neg n lnot
≤ le leq <=
≥ ge geq >=
≠ ne neq /=
∈ in mem
∉ notin nin
⊆ subseteq ss sube
⊂ sub subset ssub ssubset
∪ cup union un
∩ cap inter
ℕ N
ℤ Z
ℚ Q
ℝ R
ℂ C
⟨ langle <
⟩ rangle >
∘ circ o comp
× times x
· cdot . centerdot
⁻¹ inv -1 ^-1
₀ 0 _0
₁ 1 _1
₂ 2 _2
₃ 3 _3
₄ 4 _4
₅ 5 _5
₆ 6 _6
₇ 7 _7
₈ 8 _8
₉ 9 _9
μ mu m
σ sigma si
π pi
φ phi ph
ψ psi ps
ω omega om
θ theta th
τ tau ta
ρ rho rh
κ kappa ka
η eta et
ζ zeta ze
ξ xi
ν nu
ι iota io
χ chi ch
υ upsilon
Γ Gamma Ga G
Δ Delta De D
Θ Theta Th
Λ Lambda La L
Ξ Xi
Π Pi P
Σ Sigma Si S
Υ Upsilon
Φ Phi Ph
Ψ Psi Ps
Ω Omega Om
∑ sum
∏ prod
∞ infty
⊢ vdash |-
⊤ top
⊥ bot
↦ mapsto
▸ t
≃ equiv simeq ~-
≡ ==
≅ cong iso ~=
≈ approx ~~
∼ sim ~
∣ dvd mid |
‖ norm || Vert
⨆ sup iSup supr bigsqcup
⨅ inf iInf infi
⊔ sqcup lub
⊓ sqcap glb
∅ empty emptyset varnothing
ᶜ compl ^c
⋃ Union bigcup
⋂ Inter bigcap
\ setminus
² ^2
¹ ^1
³ ^3
⁰ ^0
⁴ ^4
⁵ ^5
⁶ ^6
⁷ ^7
⁸ ^8
⁹ ^9
↑ u uparrow
↓ d downarrow
⇒ r= Rightarrow =>
⇐ l= Leftarrow
⇔ lr= Leftrightarrow
⟶ hom --> longrightarrow r--
⟵ <-- longleftarrow l--
⟷ <--> longleftrightarrow
⟹ ==> Longrightarrow r==
⟸ Longleftarrow l==
↪ hookrightarrow into
↠ twoheadrightarrow onto
⥤ func
⋙ ggg
≪ ll
≫ gg
⟪ <<
⟫ >>
⟦ [[ llbracket
⟧ ]] rrbracket
⦃ {{
⦄ }}
‹ f<
› f>
« f<<
» f>>
⌈ ceil lceil
⌉ rceil
⌊ floor lfloor
⌋ rfloor
• smul bu bub
∙ bullet
⋆ star *
∗ ast
± pm
∓ mp
÷ div
√ sqrt
∛ cbrt
∂ partial
∇ nabla del
∫ int integral
∮ oint
⊕ oplus o+
⊗ otimes ox
⊖ ominus o-
⊙ odot o.
⊘ oslash o/
⊛ circledast o*
⨁ bigoplus
⨂ bigotimes
⨀ bigodot
⋀ bigwedge
⋁ bigvee
∐ coprod
⨿ amalg
⊎ uplus
⨄ biguplus
⊃ supset
⊇ supseteq supe
⊊ subsetneq
⊋ supsetneq
⊄ nsubset
⊈ nsubseteq
⊉ nsupseteq
⊑ sqsubseteq
⊏ sqsubset
⊒ sqsupseteq
⊐ sqsupset
∋ ni owns
∄ nexists
≰ nle nleq
≱ nge ngeq
≮ nless
≯ ngtr
≺ prec
≻ succ
≼ preceq
≽ succeq
≲ lesssim
≳ gtrsim
⋖ lessdot
⋗ gtrdot
⋘ lll
≢ nequiv
≇ ncong
≉ napprox
≁ nsim
≍ asymp
≐ doteq
≟ =?
≜ triangleq
∝ propto
⊣ dashv -|
⊨ models |= vDash
⊩ Vdash ||-
⊬ nvdash
∴ therefore
∵ because
∎ qed
∥ parallel
∤ nmid ndvd
⊻ xor
⊼ nand
⊽ nor
↕ ud updownarrow
⇑ u= Uparrow
⇓ d= Downarrow
⇕ ud= Updownarrow
↗ ur nearrow
↖ ul nwarrow
↘ dr searrow
↙ dl swarrow
⟼ longmapsto
↤ mapsfrom
↩ hookleftarrow
↝ r~ leadsto
⇝ rightsquigarrow
⇀ rightharpoonup
↼ leftharpoonup
⇌ rightleftharpoons
⇉ rightrightarrows
↣ rightarrowtail
↞ twoheadleftarrow
↺ circlearrowleft
↻ circlearrowright
ℵ aleph
ℶ beth
ℓ ell
ℏ hbar
℘ wp
ℜ Re
ℑ Im
𝒫 powerset
° deg degree
′ prime
… ldots ...
⋯ cdots
⋮ vdots
⋱ ddots
† dagger dag
‡ ddagger
© copyright
€ euro
£ pounds
¥ yen
¢ cent
✓ checkmark check
□ square box
■ blacksquare
◇ diamond
△ triangle
▽ triangledown
◁ triangleleft lhd
▷ triangleright rhd
⊴ trianglelefteq unlhd
⊵ trianglerighteq unrhd
⋉ ltimes
⋊ rtimes
∔ dotplus
♭ flat
♯ sharp
♮ natural
♣ clubsuit
♢ diamondsuit
♡ heartsuit
♠ spadesuit
∠ angle
∡ measuredangle
★ bigstar
⌣ smile
⌢ frown
≀ wr
≬ between
ᵒᵖ op ^op
ᵐᵒᵖ mop ^mop
ᵀ transpose ^T
ᴴ ^H
ϕ varphi
ϑ vartheta
ϖ varpi
ϱ varrho
ς varsigma
ϰ varkappa
⁺ ^+
⁻ ^-
⁼ ^=
⁽ ^(
⁾ ^)
ⁿ ^n
ⁱ ^i
ᵃ ^a
ᵇ ^b
ᵈ ^d
ᵉ ^e
ᶠ ^f
ᵍ ^g
ʰ ^h
ʲ ^j
ᵏ ^k
ˡ ^l
ᵐ ^m
ᵒ ^o
ᵖ ^p
ʳ ^r
ˢ ^s
ᵗ ^t
ᵘ ^u
ᵛ ^v
ʷ ^w
ˣ ^x
ʸ ^y
ᶻ ^z
₊ _+
₋ _-
₌ _=
₍ _(
₎ _)
ᵢ _i
ⱼ _j
ₖ _k
ₙ _n
ₘ _m
ₐ _a
ₑ _e
ₕ _h
ₗ _l
ₒ _o
ₚ _p
ᵣ _r
ₛ _s
ₜ _t
ᵤ _u
ᵥ _v
ₓ _x
"""


def _math_letters(prefix: str, upper: int, lower: int, holes: dict[str, str]) -> list[str]:
    """`\bbA` ... `\bbz`: the letter families of Unicode's Mathematical Alphanumeric Symbols.

    Some letters existed before that block (ℕ, ℬ, ℭ ...); Unicode leaves a hole at their place
    and the older code point is the one to use.
    """
    lines = []
    for k in range(26):
        for base, letter in ((upper, chr(ord("A") + k)), (lower, chr(ord("a") + k))):
            symbol = holes.get(letter, chr(base + k))
            lines.append(f"{symbol} {prefix}{letter}")
    return lines


_FAMILIES = [
    # Blackboard bold: \bbR ℝ, \bbk 𝕜 (Mathlib's field), and digits \bb1 𝟙.
    *_math_letters(
        "bb",
        0x1D538,
        0x1D552,
        {"C": "ℂ", "H": "ℍ", "N": "ℕ", "P": "ℙ", "Q": "ℚ", "R": "ℝ", "Z": "ℤ"},
    ),
    *(f"{chr(0x1D7D8 + d)} bb{d}" for d in range(10)),
    # Calligraphic (Unicode's script letters): \McA 𝒜, \McF ℱ.
    *_math_letters(
        "Mc",
        0x1D49C,
        0x1D4B6,
        {
            "B": "ℬ",
            "E": "ℰ",
            "F": "ℱ",
            "H": "ℋ",
            "I": "ℐ",
            "L": "ℒ",
            "M": "ℳ",
            "R": "ℛ",
            "e": "ℯ",
            "g": "ℊ",
            "o": "ℴ",
        },
    ),
    # Fraktur: \MfA 𝔄, \Mfg 𝔤.
    *_math_letters("Mf", 0x1D504, 0x1D51E, {"C": "ℭ", "H": "ℌ", "I": "ℑ", "R": "ℜ", "Z": "ℨ"}),
]


def _parse(lines: list[str]) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    table: dict[str, str] = {}
    rank: dict[str, tuple[int, int]] = {}
    for line_no, line in enumerate(lines):
        symbol, *abbreviations = line.split()
        for position, abbreviation in enumerate(abbreviations):
            if abbreviation in table:  # a typo in the table must not silently win
                raise ValueError(f"abbreviation \\{abbreviation} is listed twice")
            table[abbreviation] = symbol
            rank[abbreviation] = (line_no, position)
    return table, rank


_TABLE_DICT, _RANK = _parse([*filter(None, _TABLE.splitlines()), *_FAMILIES])

#: Every abbreviation (without its backslash) and the text it stands for: the table completion
#: reads, and the one for Python code that writes Lean text (e.g. ``\to`` as → in generated
#: statements), so both agree with what a Lean editor types.
ABBREVIATIONS: MappingProxyType[str, str] = MappingProxyType(_TABLE_DICT)

_SORTED = sorted(ABBREVIATIONS)


def expand(abbreviation: str) -> str | None:
    r"""The symbol `\abbreviation` stands for (`expand("to")` is →), or None.

    What a Lean editor puts in place of a complete abbreviation; completion offers it first.
    """
    return ABBREVIATIONS.get(abbreviation)


def is_prefix(text: str) -> bool:
    """Whether some abbreviation starts with `text` (so typing may still be under way)."""
    i = bisect.bisect_left(_SORTED, text)
    return i < len(_SORTED) and _SORTED[i].startswith(text)


@lru_cache(maxsize=2048)
def matching(prefix: str) -> tuple[tuple[str, str], ...]:
    """(abbreviation, symbol) pairs for the abbreviations starting with `prefix`, best first.

    The exact abbreviation comes first, then symbols in popularity order; each symbol appears
    once, under its best abbreviation, so `\\su` lists ⊂ once although `sub` and `subset` both
    give it.
    """
    start = bisect.bisect_left(_SORTED, prefix)
    stop = start
    while stop < len(_SORTED) and _SORTED[stop].startswith(prefix):
        stop += 1
    exact = expand(prefix)
    result = [] if exact is None else [(prefix, exact)]
    seen = {symbol for _, symbol in result}
    for abbreviation in sorted(_SORTED[start:stop], key=lambda a: _RANK[a]):
        symbol = ABBREVIATIONS[abbreviation]
        if symbol not in seen:
            seen.add(symbol)
            result.append((abbreviation, symbol))
    return tuple(result)
