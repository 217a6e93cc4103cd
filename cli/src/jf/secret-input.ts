/**
 * Secrets read from standard input or a file rather than the command line, where `ps` and the
 * shell history would show them (`jf login --token-stdin`, `jf run script --param-file`,
 * `jobfleet admin app-create --secret-stdin`).
 */
import fs from 'node:fs';
import { CliError, Exit } from './exit-codes.js';

async function readStdin(firstLineOnly: boolean): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (firstLineOnly && (chunk as Buffer).includes(0x0a)) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The first line of standard input, without its line end; a usage error when it is empty. */
export async function readStdinLine(what: string): Promise<string> {
  const line = (await readStdin(true)).split('\n')[0]?.replace(/\r$/, '') ?? '';
  if (line === '') throw new CliError(`no ${what} on standard input`, Exit.USAGE);
  return line;
}

/**
 * A whole file (`-`: standard input) without one final line end, as `echo "$X" > file` or a
 * here-string adds it.
 */
export async function readValueFile(file: string): Promise<string> {
  let text: string;
  try {
    text = file === '-' ? await readStdin(false) : fs.readFileSync(file, 'utf8');
  } catch {
    throw new CliError(`cannot read ${file}`, Exit.USAGE);
  }
  return text.replace(/\r?\n$/, '');
}
