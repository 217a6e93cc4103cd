/** Jobfleet's version: the server package's, read once (this file runs from server/dist/src/). */
import fs from 'node:fs';

const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const JOBFLEET_VERSION: string = pkg.version;
