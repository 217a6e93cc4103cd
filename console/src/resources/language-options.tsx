/** The `<option>`s of BK-JOB's script languages, for every language select. */
import { LANGUAGES } from './format';

export function LanguageOptions() {
  return (
    <>
      {LANGUAGES.map((l) => (
        <option key={l.id} value={l.id}>
          {l.name}
        </option>
      ))}
    </>
  );
}
