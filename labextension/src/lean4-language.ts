/**
 * Lean 4 syntax highlighting for CodeMirror 6: a `StreamLanguage` tokenizer.
 *
 * Tokens are mapped to standard `@lezer/highlight` tags so that JupyterLab's
 * own highlight style (and therefore its light and dark themes) colours them.
 * A small extra highlighter gives the few tags that JupyterLab leaves plain
 * (`sorry`, type universes, escapes, doc comments) a colour, and every token
 * also gets a stable `lean4-*` CSS class (useful for user CSS and tests).
 */

import {
  HighlightStyle,
  LanguageSupport,
  StreamLanguage,
  StreamParser,
  StringStream,
  syntaxHighlighting
} from '@codemirror/language';
import { Tag, tagHighlighter, tags as t } from '@lezer/highlight';

/** Term-level keywords and commands. */
export const KEYWORDS: ReadonlySet<string> = new Set([
  'abbrev',
  'at',
  'attribute',
  'axiom',
  'break',
  'builtin_initialize',
  'by',
  'calc',
  'catch',
  'class',
  'coinductive',
  'continue',
  'declare_syntax_cat',
  'decreasing_by',
  'def',
  'deriving',
  'do',
  'elab',
  'elab_rules',
  'else',
  'end',
  'example',
  'export',
  'extends',
  'finally',
  'for',
  'forall',
  'from',
  'fun',
  'have',
  'hiding',
  'if',
  'import',
  'in',
  'include',
  'inductive',
  'infix',
  'infixl',
  'infixr',
  'initialize',
  'instance',
  'irreducible_def',
  'lemma',
  'let',
  'local',
  'macro',
  'macro_rules',
  'match',
  'meta',
  'module',
  'mut',
  'mutual',
  'namespace',
  'noncomputable',
  'nofun',
  'nomatch',
  'notation',
  'omit',
  'opaque',
  'open',
  'partial',
  'postfix',
  'prefix',
  'private',
  'protected',
  'public',
  'rec',
  'renaming',
  'return',
  'scoped',
  'section',
  'set_option',
  'show',
  'structure',
  'suffices',
  'syntax',
  'termination_by',
  'then',
  'theorem',
  'try',
  'universe',
  'universes',
  'unless',
  'unsafe',
  'using',
  'variable',
  'where',
  'with',
  'λ',
  '∀',
  '∃',
  'Π',
  'Σ'
]);

/** Common tactics (Lean core, Std/Batteries and Mathlib). */
export const TACTICS: ReadonlySet<string> = new Set([
  'abel',
  'absurd',
  'aesop',
  'all_goals',
  'any_goals',
  'apply',
  'apply_assumption',
  'apply_fun',
  'apply_rules',
  'assumption',
  'bound',
  'bv_decide',
  'by_cases',
  'by_contra',
  'by_contra!',
  'case',
  'cases',
  "cases'",
  'change',
  'choose',
  'clear',
  'congr',
  'constructor',
  'continuity',
  'contradiction',
  'contrapose',
  'contrapose!',
  'conv',
  'convert',
  'decide',
  'delta',
  'done',
  'dsimp',
  'erw',
  'exact',
  'exact?',
  'exact_mod_cast',
  'exacts',
  'exfalso',
  'exists',
  'existsi',
  'ext',
  'fail',
  'field_simp',
  'filter_upwards',
  'fin_cases',
  'first',
  'focus',
  'fun_prop',
  'funext',
  'gcongr',
  'generalize',
  'grind',
  'group',
  'haveI',
  'induction',
  "induction'",
  'infer_instance',
  'injection',
  'interval_cases',
  'intro',
  'intros',
  'left',
  'letI',
  'lift',
  'linarith',
  'linear_combination',
  'measurability',
  'native_decide',
  'next',
  'nlinarith',
  'noncomm_ring',
  'norm_cast',
  'norm_num',
  'nth_rewrite',
  'nth_rw',
  'obtain',
  'omega',
  'polyrith',
  'positivity',
  'push_cast',
  'push_neg',
  'qify',
  'rcases',
  'refine',
  "refine'",
  'rename_i',
  'repeat',
  'revert',
  'rewrite',
  'rfl',
  'right',
  'ring',
  'ring_nf',
  'rintro',
  'rw',
  'rw?',
  'rwa',
  'show_term',
  'simp',
  'simp?',
  'simp_all',
  'simp_arith',
  'simp_rw',
  'simpa',
  'skip',
  'solve_by_elim',
  'specialize',
  'split',
  'split_ands',
  'split_ifs',
  'subst',
  'symm',
  'tauto',
  'trans',
  'trivial',
  'unfold',
  'use',
  'zify'
]);

/** Sort-like keywords. */
const SORTS: ReadonlySet<string> = new Set(['Type', 'Prop', 'Sort']);

/** Placeholders for missing proofs. */
const SORRY: ReadonlySet<string> = new Set(['sorry', 'admit']);

/** Keywords after which the next identifier is the name being declared. */
const DECLARATIONS: ReadonlySet<string> = new Set([
  'abbrev',
  'axiom',
  'class',
  'def',
  'inductive',
  'instance',
  'irreducible_def',
  'lemma',
  'opaque',
  'structure',
  'theorem'
]);

/** Extra tags for Lean-specific tokens (they extend standard tags). */
export const leanTags = {
  /** A tactic name. Shown like JupyterLab's "variable-2" colour. */
  tactic: Tag.define(t.variableName),
  /** `sorry` / `admit`. */
  sorry: Tag.define(t.invalid)
};

// Lean identifiers: letters (except λ Π Σ, which are keywords), `_`, then
// letters, digits, `_`, `'`, `!`, `?` and subscripts; `«quoted»` parts.
const ID_PART = String.raw`(?:«[^»]*»|(?![λΠΣ])[\p{L}_](?:(?![λΠΣ])[\p{L}\p{N}_'!?])*)`;
const IDENT = new RegExp(String.raw`^${ID_PART}(?:\.${ID_PART})*`, 'u');
const NAME_LITERAL = new RegExp('^``?' + ID_PART + String.raw`(?:\.` + ID_PART + ')*', 'u');
const CHAR = /^'(?:\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)|[^'\\])'/u;
const NUMBER =
  /^(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)/;
const ASCII_OPERATOR = /^(?:(?!--|\/-)[-+*/=<>!&|^%:;~?@$\\.#])+/;
const ESCAPE = /^\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|u\{[0-9a-fA-F]+\}|[\s\S])/;

/** Tokens after which Enter indents the next line one more unit. */
const INDENT_AFTER: ReadonlySet<string> = new Set([
  ':=',
  '=>',
  'by',
  'do',
  'where',
  'then',
  'else',
  'from',
  'calc'
]);

export interface ILeanState {
  /** Nesting depth of `/- -/` comments (0 when outside a comment). */
  commentDepth: number;
  /** Whether the open block comment is a doc comment (`/--` or `/-!`). */
  docComment: boolean;
  /** Inside a string literal: null, or the number of `#` of a raw string (-1 for a normal one). */
  stringHashes: number | null;
  /** Inside `@[ ... ]`: bracket depth. */
  attributeDepth: number;
  /** The next identifier is a declaration name. */
  expectName: boolean;
  /** Indentation of the last non-blank line. */
  lineIndent: number;
  /** The last significant token asks for an indented next line. */
  indentNext: boolean;
}

function tokenizeComment(stream: StringStream, state: ILeanState): string {
  while (!stream.eol()) {
    if (stream.match('/-')) {
      state.commentDepth++;
    } else if (stream.match('-/')) {
      state.commentDepth--;
      if (state.commentDepth === 0) {
        break;
      }
    } else {
      stream.next();
    }
  }
  return state.docComment ? 'docComment' : 'blockComment';
}

function tokenizeString(stream: StringStream, state: ILeanState): string {
  const hashes = state.stringHashes ?? -1;
  if (hashes < 0) {
    if (stream.match(ESCAPE)) {
      return 'escape';
    }
    while (!stream.eol()) {
      const ch = stream.peek();
      if (ch === '\\') {
        return 'string';
      }
      stream.next();
      if (ch === '"') {
        state.stringHashes = null;
        return 'string';
      }
    }
    return 'string';
  }
  const close = '"' + '#'.repeat(hashes);
  while (!stream.eol()) {
    if (stream.match(close)) {
      state.stringHashes = null;
      return 'string';
    }
    stream.next();
  }
  return 'string';
}

function token(stream: StringStream, state: ILeanState): string | null {
  if (stream.sol() && state.commentDepth === 0 && state.stringHashes === null) {
    // Remember the indentation of the current (non-blank) line.
    state.lineIndent = stream.indentation();
  }
  if (state.commentDepth > 0) {
    return tokenizeComment(stream, state);
  }
  if (state.stringHashes !== null) {
    return tokenizeString(stream, state);
  }
  if (stream.eatSpace()) {
    return null;
  }

  const style = tokenBase(stream, state);
  const text = stream.current();
  if (style !== 'lineComment' && style !== 'blockComment' && style !== 'docComment') {
    state.indentNext = INDENT_AFTER.has(text);
    state.expectName = style === 'keyword' && DECLARATIONS.has(text);
  }
  return style;
}

function tokenBase(stream: StringStream, state: ILeanState): string | null {
  // Comments
  if (stream.match('--')) {
    stream.skipToEnd();
    return 'lineComment';
  }
  if (stream.match('/-')) {
    state.commentDepth = 1;
    // `/--` (declaration doc) and `/-!` (module doc), but not the empty `/--/`.
    const next = stream.peek();
    state.docComment = (next === '-' && !stream.match('-/', false)) || next === '!';
    if (state.docComment) {
      stream.next();
    }
    return tokenizeComment(stream, state);
  }

  // Strings and characters
  if (stream.match('"')) {
    state.stringHashes = -1;
    return tokenizeString(stream, state);
  }
  const raw = stream.match(/^r(#*)"/) as RegExpMatchArray | null;
  if (raw) {
    state.stringHashes = raw[1].length;
    return tokenizeString(stream, state);
  }
  if (stream.match(CHAR)) {
    return 'character';
  }

  // Attributes `@[simp, norm_cast]`
  if (stream.match('@[')) {
    state.attributeDepth = 1;
    return 'meta';
  }
  if (state.attributeDepth > 0) {
    if (stream.eat('[')) {
      state.attributeDepth++;
      return 'squareBracket';
    }
    if (stream.eat(']')) {
      state.attributeDepth--;
      return state.attributeDepth === 0 ? 'meta' : 'squareBracket';
    }
  }

  // `#eval`, `#check`, ... commands
  if (stream.match(/^#[a-zA-Z_][\w!?]*/)) {
    return 'meta';
  }

  // Numbers (before identifiers so that `2x` is a number then a name)
  if (stream.match(NUMBER)) {
    return 'number';
  }

  // Name literals `` `Nat.succ ``
  if (stream.match(NAME_LITERAL)) {
    return 'string.special';
  }

  // Identifiers and keywords
  const ident = stream.match(IDENT) as RegExpMatchArray | null;
  if (ident) {
    const word = ident[0];
    if (state.attributeDepth > 0) {
      return 'attributeName';
    }
    if (SORRY.has(word)) {
      return 'sorry';
    }
    if (KEYWORDS.has(word)) {
      return 'keyword';
    }
    if (SORTS.has(word)) {
      return 'typeName';
    }
    if (word === 'true' || word === 'false' || word === 'True' || word === 'False') {
      return 'bool';
    }
    if (state.expectName) {
      return 'variableName.definition';
    }
    if (TACTICS.has(word)) {
      return 'tactic';
    }
    return 'variableName';
  }

  // Brackets and punctuation
  const ch = stream.next();
  if (ch === undefined) {
    return null;
  }
  if (ch === '(' || ch === ')') {
    return 'paren';
  }
  if (ch === '[' || ch === ']') {
    return 'squareBracket';
  }
  if (ch === '{' || ch === '}') {
    return 'brace';
  }
  if ('⟨⟩⦃⦄‹›⟦⟧«»'.includes(ch)) {
    return 'angleBracket';
  }
  if (ch === ',') {
    return 'separator';
  }
  if (ch === 'λ' || ch === 'Π' || ch === 'Σ') {
    return 'keyword';
  }
  if (ch === ';') {
    return 'separator';
  }
  if (ch === '.' && !stream.match(/^[-+*/=<>!&|^%:~?@$\\.#]/, false)) {
    return 'derefOperator';
  }
  if (/[-+*/=<>!&|^%:;~?@$\\.#]/.test(ch)) {
    stream.backUp(1);
    stream.match(ASCII_OPERATOR);
    return 'operator';
  }
  if (ch === '∀' || ch === '∃') {
    return 'keyword';
  }
  // Any other (unicode) symbol: →, ↔, ∧, ∨, ¬, ≤, ≠, ∘, ·, ↦, ∑, ...
  if (/[\p{S}\p{P}]/u.test(ch)) {
    return 'operator';
  }
  return null;
}

/** The Lean 4 stream parser. */
export const lean4Parser: StreamParser<ILeanState> = {
  name: 'lean4',
  startState: () => ({
    commentDepth: 0,
    docComment: false,
    stringHashes: null,
    attributeDepth: 0,
    expectName: false,
    lineIndent: 0,
    indentNext: false
  }),
  copyState: state => ({ ...state }),
  token,
  blankLine: () => undefined,
  indent: (state, textAfter, cx) => {
    if (state.commentDepth > 0 || state.stringHashes !== null) {
      return null;
    }
    return state.lineIndent + (state.indentNext ? cx.unit : 0);
  },
  tokenTable: {
    tactic: leanTags.tactic,
    sorry: leanTags.sorry
  },
  languageData: {
    commentTokens: { line: '--', block: { open: '/-', close: '-/' } },
    closeBrackets: { brackets: ['(', '[', '{', '"', '⟨'] },
    wordChars: "_'!?"
  }
};

/** The Lean 4 CodeMirror language (its `name` is `lean4`). */
export const lean4Language = StreamLanguage.define(lean4Parser);

/**
 * Colours for the tags that JupyterLab's highlight style leaves plain.
 * Only CSS variables of the JupyterLab themes are used, so light and dark
 * themes both work.
 */
export const lean4HighlightStyle = HighlightStyle.define([
  {
    tag: leanTags.sorry,
    color: 'var(--jp-mirror-editor-error-color, red)',
    fontWeight: 'bold',
    textDecoration: 'underline wavy var(--jp-mirror-editor-error-color, red)'
  },
  { tag: leanTags.tactic, color: 'var(--jp-mirror-editor-variable-2-color)' },
  { tag: t.typeName, color: 'var(--jp-mirror-editor-variable-3-color)' },
  { tag: t.escape, color: 'var(--jp-mirror-editor-string-2-color)' },
  {
    tag: t.docComment,
    color: 'var(--jp-mirror-editor-comment-color)',
    fontStyle: 'italic'
  }
]);

/** Stable class names (`lean4-keyword`, `lean4-sorry`, ...) for every token. */
export const lean4ClassHighlighter = tagHighlighter([
  { tag: t.keyword, class: 'lean4-keyword' },
  { tag: leanTags.tactic, class: 'lean4-tactic' },
  { tag: leanTags.sorry, class: 'lean4-sorry' },
  { tag: t.meta, class: 'lean4-command' },
  { tag: t.attributeName, class: 'lean4-attribute' },
  { tag: t.typeName, class: 'lean4-sort' },
  { tag: t.definition(t.variableName), class: 'lean4-definition' },
  { tag: t.bool, class: 'lean4-bool' },
  { tag: t.number, class: 'lean4-number' },
  { tag: t.docComment, class: 'lean4-doc-comment' },
  { tag: t.comment, class: 'lean4-comment' },
  { tag: t.escape, class: 'lean4-escape' },
  { tag: t.special(t.string), class: 'lean4-name-literal' },
  { tag: t.string, class: 'lean4-string' },
  { tag: t.operator, class: 'lean4-operator' },
  { tag: t.bracket, class: 'lean4-bracket' }
]);

/** Language support for Lean 4: the language plus its extra highlighters. */
export function lean4(): LanguageSupport {
  return new LanguageSupport(lean4Language, [
    syntaxHighlighting(lean4HighlightStyle),
    syntaxHighlighting(lean4ClassHighlighter)
  ]);
}
