/**
 * Limits on a JSON request body's shape, checked on its text before it is parsed: a parse
 * happens before any authentication, and `[{},{},…]` takes some twenty times its text in heap
 * (64 MiB of it, over a gigabyte), while nesting thousands deep overflows the stack of the
 * recursive walks over a request. Legitimate requests stay far below both: a 50,000-host
 * `ip_list` holds about 150,000 values and nests four deep.
 */
export const MAX_JSON_VALUES = 1_000_000;
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** Why a JSON text holds too much to be parsed, or undefined. Counts containers and separators. */
export function jsonShapeProblem(text: string): string | undefined {
  let depth = 0;
  let values = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > MAX_JSON_DEPTH) return `body nests deeper than ${MAX_JSON_DEPTH} levels`;
      values++;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
    else if (c === COMMA) values++;
    if (values > MAX_JSON_VALUES) return `body holds more than ${MAX_JSON_VALUES} values`;
  }
  return undefined;
}
