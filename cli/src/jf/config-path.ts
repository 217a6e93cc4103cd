/** Where the profile file lives: $XDG_CONFIG_HOME/jobfleet/config.yaml, else ~/.config/jobfleet/config.yaml. */
import os from 'node:os';
import path from 'node:path';

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'jobfleet', 'config.yaml');
}
