/** Driver errors both engines raise, recognised in one place. */

/** A unique constraint refused the write (PostgreSQL 23505, SQLite SQLITE_CONSTRAINT_UNIQUE). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * The statement was refused for what it holds (a constraint, a value the column cannot take, a
 * statement the schema does not fit), so sending it again fails again. Connection losses,
 * timeouts, lock conflicts, a fenced server or a full disk are not: they pass.
 */
export function isLastingRefusal(err: unknown): boolean {
  if (err instanceof RangeError || err instanceof TypeError) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  if (/^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code)) return true;
  // PostgreSQL classes: 22 data exception, 23 integrity constraint, 42 syntax or access rule.
  return /^(22|23|42)[0-9A-Z]{3}$/.test(code);
}
