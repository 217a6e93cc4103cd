/** One line of terminal output with its ANSI colours and styles (anser parses; text stays text). */
import Anser from 'anser';
import { memo } from 'react';

const ESC = '\u001b';

export const AnsiLine = memo(function AnsiLine({ text, highlight }: { text: string; highlight?: string }) {
  if (!text.includes(ESC)) return <>{mark(text, highlight)}</>;
  const parts = Anser.ansiToJson(text, { json: true, remove_empty: true });
  return (
    <>
      {parts.map((p, i) => {
        const style: Record<string, string> = {};
        if (p.fg) style.color = `rgb(${p.fg})`;
        if (p.bg) style.backgroundColor = `rgb(${p.bg})`;
        if (p.decorations.includes('bold')) style.fontWeight = '700';
        if (p.decorations.includes('italic')) style.fontStyle = 'italic';
        if (p.decorations.includes('underline')) style.textDecoration = 'underline';
        return (
          <span key={i} style={style}>
            {mark(p.content, highlight)}
          </span>
        );
      })}
    </>
  );
});

/** Removes ANSI escapes (for search and copy). */
export function stripAnsi(text: string): string {
  return text.includes(ESC) ? Anser.ansiToText(text) : text;
}

function mark(text: string, needle: string | undefined) {
  if (!needle) return text;
  const out = [];
  const lower = text.toLowerCase();
  const n = needle.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(n); i >= 0; i = lower.indexOf(n, at)) {
    out.push(text.slice(at, i));
    out.push(<mark key={i}>{text.slice(i, i + n.length)}</mark>);
    at = i + n.length;
  }
  out.push(text.slice(at));
  return out;
}
