/**
 * A script editor on CodeMirror 6: line numbers, undo history, highlighting for the script's
 * language, read-only when the person may not edit. Tab is left to move focus (keyboard users
 * must be able to leave the editor); indentation is typed.
 */
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { defaultHighlightStyle, StreamLanguage, syntaxHighlighting } from '@codemirror/language';
import type { StreamParser } from '@codemirror/language';
import { perl } from '@codemirror/legacy-modes/mode/perl';
import { powerShell } from '@codemirror/legacy-modes/mode/powershell';
import { python } from '@codemirror/legacy-modes/mode/python';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { standardSQL } from '@codemirror/legacy-modes/mode/sql';
import { Compartment, EditorState } from '@codemirror/state';
import type { Extension } from '@codemirror/state';
import { drawSelection, EditorView, highlightActiveLine, keymap, lineNumbers } from '@codemirror/view';
import { useEffect, useRef } from 'react';

const MODES: Record<number, StreamParser<unknown> | undefined> = {
  1: shell as StreamParser<unknown>,
  3: perl as StreamParser<unknown>,
  4: python as StreamParser<unknown>,
  5: powerShell as StreamParser<unknown>,
  6: standardSQL as StreamParser<unknown>,
};

function languageOf(id: number): Extension {
  const mode = MODES[id];
  return mode ? StreamLanguage.define(mode) : [];
}

export interface CodeEditorProps {
  value: string;
  onChange?: (value: string) => void;
  /** BK-JOB script language number (1 shell .. 6 SQL). */
  language: number;
  readOnly?: boolean;
  /** The accessible name of the editing area. */
  label: string;
  id?: string;
}

export function CodeEditor({ value, onChange, language, readOnly = false, label, id }: CodeEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView>(undefined);
  const changed = useRef(onChange);
  changed.current = onChange;
  const lang = useRef(new Compartment());
  const ro = useRef(new Compartment());

  useEffect(() => {
    if (!host.current) return;
    const v = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: value,
        extensions: [
          lineNumbers(),
          history(),
          drawSelection(),
          highlightActiveLine(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          keymap.of([...defaultKeymap, ...historyKeymap]),
          lang.current.of(languageOf(language)),
          ro.current.of([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
          EditorView.contentAttributes.of({ 'aria-label': label, ...(id ? { id } : {}) }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) changed.current?.(u.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = v;
    return () => v.destroy();
    // The editor is made once; later prop changes are applied below.
  }, []);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value)
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);
  useEffect(() => {
    view.current?.dispatch({ effects: lang.current.reconfigure(languageOf(language)) });
  }, [language]);
  useEffect(() => {
    view.current?.dispatch({
      effects: ro.current.reconfigure([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
    });
  }, [readOnly]);

  return <div className={`code-editor${readOnly ? ' read-only' : ''}`} ref={host} />;
}
