/**
 * Callback URLs at rest. A webhook URL often is its own credential (a token in its path or
 * query), so `job_instance.callback_url` and `callback.url` hold it sealed with the server key
 * (SecretBox), and it is opened only where it is used: to send a callback, to check it against
 * the allow-list, to count a receiver's slots, and in the replies that show it.
 *
 * One purpose for every callback URL, rather than one per row as other secrets have (`app:<code>`,
 * `account:<id>`): a job's URL is sealed at submission, before the job has an id, and its callbacks
 * copy that sealed text as it is. Binding the purpose still keeps a sealed callback URL from
 * opening as any other kind of secret, and another secret from opening as a callback URL.
 *
 * Rows stored before callback URLs were sealed hold them plain: a value without the SecretBox
 * prefix is a plain URL, used as it is (and sealed by the start-up reseal, secret-rotation.ts).
 */
import { SecretBox, SecretBoxError } from '../secret-box.js';

export const CALLBACK_URL_PURPOSE = 'callback-url';

/** The URL sealed for storing; null stays null. */
export function sealCallbackUrl(box: SecretBox, url: string | null): string | null {
  return url === null ? null : box.seal(url, CALLBACK_URL_PURPOSE);
}

/** The URL a stored value holds: opened when sealed, as it is when plain. Throws SecretBoxError. */
export function openCallbackUrl(box: SecretBox, stored: string): string {
  return SecretBox.isSealed(stored) ? box.open(stored, CALLBACK_URL_PURPOSE) : stored;
}

/**
 * openCallbackUrl for those that go on when it does not open (the queue fails that callback,
 * a reply shows no URL): the URL, or why it does not open.
 */
export function tryOpenCallbackUrl(box: SecretBox, stored: string): { url: string } | { error: string } {
  try {
    return { url: openCallbackUrl(box, stored) };
  } catch (err) {
    if (err instanceof SecretBoxError) return { error: err.message };
    throw err;
  }
}

/**
 * A stored value as it should be stored now: sealed under the current key. A plain URL is
 * sealed, one under an earlier key resealed; one that does not open is left as it is (what
 * uses it fails with the reason, rather than this guessing at it). Throws nothing.
 */
export function callbackUrlAtRest(box: SecretBox, stored: string): string {
  if (SecretBox.isSealed(stored) && !box.needsReseal(stored)) return stored;
  try {
    return box.seal(openCallbackUrl(box, stored), CALLBACK_URL_PURPOSE);
  } catch {
    return stored;
  }
}
