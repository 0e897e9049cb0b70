/**
 * Lean's unicode input (`\alpha` → `α`, `\to` → `→`, `\N` → `ℕ`, ...) for
 * CodeMirror 6, driven by the official `@leanprover/unicode-input` package:
 * its abbreviation table (`AbbreviationProvider`) and its rewriter
 * (`AbbreviationRewriter`, the same engine as the VS Code extension).
 *
 * Behaviour (as in VS Code):
 * - typing `\` starts an abbreviation, which is underlined while it is typed;
 * - it is replaced as soon as it is complete and unambiguous, or when the next
 *   typed character cannot continue it (a space, `)`, ...; the character stays),
 *   or when the cursor leaves it;
 * - Tab replaces the abbreviation being typed (the shortest match for what was
 *   typed so far); without one, Tab does what it did before (completion,
 *   indentation);
 * - running a cell (Shift/Ctrl/Alt+Enter) or leaving the editor replaces the
 *   abbreviations still being typed first.
 *
 * Only editors whose language is Lean 4 are affected.
 */

import { language } from '@codemirror/language';
import {
  EditorSelection,
  EditorState,
  Extension,
  Prec,
  StateEffect,
  Transaction
} from '@codemirror/state';
import {
  Decoration,
  DecorationSet,
  EditorView,
  keymap,
  PluginValue,
  ViewPlugin,
  ViewUpdate
} from '@codemirror/view';
import {
  AbbreviationConfig,
  AbbreviationProvider,
  AbbreviationRewriter,
  AbbreviationTextSource,
  Change,
  Range,
  SelectionMoveMode
} from '@leanprover/unicode-input';

/** Name of the CodeMirror language the input is active for. */
export const LEAN_LANGUAGE_NAME = 'lean4';

/** The leader character of abbreviations. */
export const ABBREVIATION_CHARACTER = '\\';

/** A string no edit inserts: disables tracking of new abbreviations. */
const NEVER_TYPED = '\uffff\uffff';

/** Whether an editor state is in Lean 4 mode. */
export function isLean(state: EditorState): boolean {
  const lang = state.facet(language);
  return lang !== null && lang.name === LEAN_LANGUAGE_NAME;
}

let sharedProvider: AbbreviationProvider | null = null;

/** The abbreviation table of `@leanprover/unicode-input` (built once). */
export function abbreviationProvider(): AbbreviationProvider {
  if (sharedProvider === null) {
    sharedProvider = new AbbreviationProvider({
      abbreviationCharacter: ABBREVIATION_CHARACTER,
      customTranslations: {},
      eagerReplacementEnabled: true
    });
  }
  return sharedProvider;
}

/** Forces a redraw of the abbreviation underline. */
const refreshEffect = StateEffect.define<null>();

/** User event of the replacement transactions. */
const REPLACE_EVENT = 'input.lean-abbreviation';

const trackedMark = Decoration.mark({ class: 'cm-lean4-abbreviation' });

class LeanInputPlugin implements PluginValue, AbbreviationTextSource {
  decorations: DecorationSet = Decoration.none;

  private readonly config: AbbreviationConfig = {
    abbreviationCharacter: ABBREVIATION_CHARACTER,
    customTranslations: {},
    eagerReplacementEnabled: true
  };
  private readonly rewriter: AbbreviationRewriter;
  private scheduled = false;
  private destroyed = false;
  private desynced = false;

  constructor(private readonly view: EditorView) {
    this.rewriter = new AbbreviationRewriter(this.config, abbreviationProvider(), this);
  }

  update(update: ViewUpdate): void {
    if (!isLean(update.state)) {
      if (this.rewriter.getTrackedAbbreviations().size > 0) {
        this.rewriter.resetTrackedAbbreviations();
      }
      this.decorations = Decoration.none;
      return;
    }
    for (const tr of update.transactions) {
      if (!tr.docChanged) {
        continue;
      }
      const changes: Change[] = [];
      tr.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
        changes.push({ range: new Range(fromA, toA - fromA), newText: inserted.toString() });
      });
      if (tr.annotation(Transaction.userEvent) === undefined) {
        // Not typed here (e.g. an edit made in another view of the same
        // document, or a programmatic change): keep the tracked ranges in
        // place but do not start tracking a `\` from it.
        this.withoutNewAbbreviations(() => this.rewriter.changeInput(changes));
      } else {
        this.rewriter.changeInput(changes);
      }
    }
    if (update.docChanged || update.selectionSet) {
      this.schedule();
    }
    this.decorations = this.buildDecorations(update.state);
  }

  destroy(): void {
    this.destroyed = true;
  }

  /** Tab: replace the abbreviations being typed, if any has a replacement. */
  convert(): boolean {
    const tracked = [...this.rewriter.getTrackedAbbreviations()];
    if (!tracked.some(a => a.matchingSymbol !== undefined)) {
      return false;
    }
    void this.rewriter.replaceAllTrackedAbbreviations().then(() => this.afterReplace());
    return true;
  }

  /** Replace everything still being typed (before running a cell, on blur). */
  flushAll(): void {
    if (this.rewriter.getTrackedAbbreviations().size > 0) {
      void this.rewriter.replaceAllTrackedAbbreviations().then(() => this.afterReplace());
    }
  }

  // AbbreviationTextSource

  async replaceAbbreviations(changes: Change[]): Promise<boolean> {
    if (this.destroyed) {
      return false;
    }
    const doc = this.view.state.doc;
    for (const c of changes) {
      const end = c.range.offset + c.range.length;
      if (
        c.range.offset < 0 ||
        end > doc.length ||
        doc.sliceString(c.range.offset, c.range.offset + 1) !== ABBREVIATION_CHARACTER
      ) {
        this.desynced = true;
        return false;
      }
    }
    this.view.dispatch({
      changes: changes.map(c => ({
        from: c.range.offset,
        to: c.range.offset + c.range.length,
        insert: c.newText
      })),
      userEvent: REPLACE_EVENT
    });
    return true;
  }

  selectionMoveMode(): SelectionMoveMode {
    return { kind: 'OnlyMoveCursorSelections', updateUnchangedSelections: false };
  }

  collectSelections(): Range[] {
    return this.view.state.selection.ranges.map(r => new Range(r.from, r.to - r.from));
  }

  setSelections(selections: Range[]): void {
    if (this.destroyed || selections.length === 0) {
      return;
    }
    const length = this.view.state.doc.length;
    const clamp = (n: number) => Math.max(0, Math.min(length, n));
    const ranges = selections.map(s =>
      EditorSelection.range(clamp(s.offset), clamp(s.offset + s.length))
    );
    const main = Math.min(this.view.state.selection.mainIndex, ranges.length - 1);
    this.view.dispatch({ selection: EditorSelection.create(ranges, main) });
  }

  // Internals

  private withoutNewAbbreviations(f: () => void): void {
    this.config.abbreviationCharacter = NEVER_TYPED;
    try {
      f();
    } finally {
      this.config.abbreviationCharacter = ABBREVIATION_CHARACTER;
    }
  }

  /** Run the replacement logic once the current update is over. */
  private schedule(): void {
    if (this.scheduled) {
      return;
    }
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    // Never edit the document under an input method composition: the update
    // that ends it schedules this again.
    if (this.destroyed || this.view.composing) {
      return;
    }
    await this.rewriter.triggerAbbreviationReplacement();
    await this.rewriter.changeSelections(this.collectSelections());
    this.afterReplace();
  }

  private afterReplace(): void {
    if (this.destroyed) {
      return;
    }
    if (this.desynced) {
      this.desynced = false;
      this.rewriter.resetTrackedAbbreviations();
    }
    // The tracked set may have changed without a document change: redraw.
    const wanted = this.buildDecorations(this.view.state);
    if (!sameDecorations(wanted, this.decorations)) {
      this.view.dispatch({ effects: refreshEffect.of(null) });
    }
  }

  private buildDecorations(state: EditorState): DecorationSet {
    const length = state.doc.length;
    const ranges = [...this.rewriter.getTrackedAbbreviations()]
      .map(a => a.range)
      .filter(r => r.length > 0 && r.offset >= 0 && r.offset + r.length <= length)
      .sort((a, b) => a.offset - b.offset)
      .map(r => trackedMark.range(r.offset, r.offset + r.length));
    return ranges.length === 0 ? Decoration.none : Decoration.set(ranges);
  }
}

function sameDecorations(a: DecorationSet, b: DecorationSet): boolean {
  const spans = (set: DecorationSet) => {
    const out: number[] = [];
    set.between(0, Number.MAX_SAFE_INTEGER, (from, to) => {
      out.push(from, to);
    });
    return out.join(',');
  };
  return spans(a) === spans(b);
}

const leanInputPlugin = ViewPlugin.fromClass(LeanInputPlugin, {
  decorations: v => v.decorations
});

function withPlugin(run: (p: LeanInputPlugin) => boolean): (view: EditorView) => boolean {
  return view => {
    if (!isLean(view.state)) {
      return false;
    }
    const plugin = view.plugin(leanInputPlugin);
    return plugin ? run(plugin) : false;
  };
}

/** Flush, then let the key do its usual job (run the cell). */
const flushThenContinue = withPlugin(p => {
  p.flushAll();
  return false;
});

/**
 * The CodeMirror extension: add it to any editor, it only acts when the
 * editor's language is Lean 4.
 */
export function leanUnicodeInput(): Extension {
  return [
    leanInputPlugin,
    Prec.highest(
      keymap.of([
        { key: 'Tab', run: withPlugin(p => p.convert()) },
        { key: 'Shift-Enter', run: flushThenContinue },
        { key: 'Mod-Enter', run: flushThenContinue },
        { key: 'Alt-Enter', run: flushThenContinue }
      ])
    ),
    EditorView.domEventHandlers({
      blur: (_event, view) => {
        withPlugin(p => {
          p.flushAll();
          return false;
        })(view);
        return false;
      }
    }),
    EditorView.baseTheme({
      '.cm-lean4-abbreviation': {
        textDecoration: 'underline',
        textUnderlineOffset: '2px'
      }
    })
  ];
}
