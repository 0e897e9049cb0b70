/**
 * JupyterLab 4 / Notebook 7 extension: Lean 4 syntax highlighting and Lean's
 * `\alpha`-style unicode input in every editor whose language is Lean 4
 * (cells of a Lean kernel notebook, `.lean` files).
 *
 * Both registries are optional so the plugin activates in any JupyterLab 4
 * based application (JupyterLab, Notebook 7, ...), doing what it can there.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  EditorExtensionRegistry,
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';

import { lean4 } from './lean4-language';
import { leanUnicodeInput } from './unicode-input';

export { lean4, lean4Language, KEYWORDS, TACTICS } from './lean4-language';
export { leanUnicodeInput, isLean, abbreviationProvider } from './unicode-input';

/** The MIME type of Lean 4 source. */
export const LEAN4_MIME = 'text/x-lean4';

const PLUGIN_ID = 'lean-kernel-jupyterlab:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Lean 4 syntax highlighting and unicode input (\\alpha → α).',
  autoStart: true,
  optional: [IEditorLanguageRegistry, IEditorExtensionRegistry],
  activate: (
    app: JupyterFrontEnd,
    languages: IEditorLanguageRegistry | null,
    extensions: IEditorExtensionRegistry | null
  ) => {
    if (languages) {
      const support = lean4();
      languages.addLanguage({
        name: 'lean4',
        displayName: 'Lean 4',
        alias: ['lean', 'Lean 4'],
        mime: LEAN4_MIME,
        extensions: ['lean'],
        support,
        load: async () => support
      });
    } else {
      console.warn(`${PLUGIN_ID}: no editor language registry, no Lean 4 highlighting`);
    }

    if (extensions) {
      const input = leanUnicodeInput();
      extensions.addExtension({
        name: 'lean-kernel:unicode-input',
        default: true,
        factory: () => EditorExtensionRegistry.createConditionalExtension(input, []),
        schema: {
          type: 'boolean',
          title: 'Lean unicode input',
          description:
            'In Lean 4 editors, replace abbreviations such as \\alpha, \\to or \\N by α, → or ℕ.'
        }
      });
    } else {
      console.warn(`${PLUGIN_ID}: no editor extension registry, no Lean unicode input`);
    }

    // Give `.lean` files a file type, so they open as Lean 4 text.
    try {
      app.docRegistry.addFileType({
        name: 'lean4',
        displayName: 'Lean 4 File',
        extensions: ['.lean'],
        mimeTypes: [LEAN4_MIME],
        fileFormat: 'text',
        contentType: 'file'
      });
    } catch (reason) {
      console.warn(`${PLUGIN_ID}: could not add the .lean file type`, reason);
    }
  }
};

export default plugin;
