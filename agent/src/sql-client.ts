/**
 * SQL tasks run the MySQL/MariaDB command-line client (`mariadb`, or `mysql` where only that
 * name exists) on the target host, against the database server on that host.
 *
 * The client binary rather than a driver library: what operators expect to read is exactly the
 * client's output (result sets as `--table` grids, "Query OK, 2 rows affected", `ERROR 1064
 * (42000) at line 3: ...`), the client splits statements the way DBAs know (DELIMITER,
 * comments, quoted semicolons) and stops at the first failing one with exit code 1, and a DBA
 * can rerun the same file by hand and see the same thing. A driver would mean rewriting all of
 * that. The client also stops a running statement on the server when it gets SIGINT (it sends
 * KILL QUERY over a second connection), which is how a terminate or a timeout reaches the
 * database; a client killed outright would leave its statement running.
 *
 * The password never appears in the client's arguments or environment: it is written to an
 * option file (0600, owned by the account the client runs as) in the task's private directory,
 * named by --defaults-extra-file, and removed with that directory when the task ends. The SQL
 * itself must not read that file back: the client's own commands (`system cat client.cnf`,
 * `source client.cnf`, whose syntax error quotes the file) are refused in MariaDB's sandbox mode
 * (`--sandbox`, Debian 12's 10.11 client has it), or `system` alone with MySQL's
 * `--system-command=OFF` (8.0.40 on); LOAD DATA LOCAL INFILE, which would send the file to the
 * database, is off whatever the account's own option files say. An older client has neither
 * option and runs as before.
 */
import { execFileSync } from 'node:child_process';
import type { DatabaseLogin } from '@jobfleet/protocol';

export const SQL_CLIENT_NAMES = ['mariadb', 'mysql'];

/** The option file name inside the task's private directory. */
export const OPTION_FILE = 'client.cnf';

/** How long a client has to cancel its statement after SIGINT before its process group is killed. */
export const SQL_CANCEL_GRACE_MS = 3000;

/** A value in an option file: quoted, with the escapes the client's option parser understands. */
function optionValue(v: string): string {
  const escaped = v
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

/** TCP to 127.0.0.1 (not `localhost`, which the client would take as its default socket) at the account's port. */
export function optionFileText(login: DatabaseLogin): string {
  return [
    '[client]',
    `user=${optionValue(login.user)}`,
    `password=${optionValue(login.password)}`,
    'host=127.0.0.1',
    `port=${login.port}`,
    '',
  ].join('\n');
}

/**
 * The shell command the runner starts with `$0` = client, `$1` = option file, `$2` = SQL file,
 * then the client's sandbox options (sqlSandboxOptions). `--defaults-extra-file` must come
 * first; `-vv` prints each statement with its affected-row count as `mysql --table` users read
 * it; `--unbuffered` flushes after each statement so output streams as it happens; stderr is
 * joined to stdout so errors stand where they happened.
 */
export const SQL_CLIENT_COMMAND =
  'exec 2>&1\noptions="$1" sql="$2"\nshift 2\nexec "$0" --defaults-extra-file="$options" --table -vv --unbuffered --default-character-set=utf8mb4 --local-infile=0 "$@" < "$sql"';

/** By client path: what its help lists is asked once per agent process. */
const sandboxes = new Map<string, string[]>();

/**
 * The options that keep a client's own commands off the file system, as far as this client
 * knows them. Read from its help text: trying an option tells nothing, since MariaDB's client
 * reports an unknown one and still exits 0 for --version or --help.
 */
export function sqlSandboxOptions(client: string): string[] {
  let options = sandboxes.get(client);
  if (!options) {
    let help = '';
    try {
      help = execFileSync(client, ['--no-defaults', '--help'], {
        encoding: 'utf8',
        timeout: 10_000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      // A client that cannot print its help is started as before and reports its own failure.
    }
    options = /^\s*--sandbox\b/m.test(help)
      ? ['--sandbox']
      : /^\s*--system-command\b/m.test(help)
        ? ['--system-command=OFF']
        : [];
    sandboxes.set(client, options);
  }
  return options;
}

/** Why a login cannot run here, or undefined when it can. */
export function unsupportedEngine(login: DatabaseLogin | undefined): string | undefined {
  if (!login) return 'a SQL task needs a database account';
  if (login.engine !== 'mysql') return `${login.engine} databases are not supported yet (MySQL/MariaDB only)`;
  return undefined;
}
