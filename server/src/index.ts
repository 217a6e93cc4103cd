export { startServer } from './server.js';
export type { RunningServer } from './server.js';
export { loadConfig, readConfigFile, ConfigError, CONFIG_KEYS } from './config.js';
export type { ServerConfig, ConfigInput } from './config.js';
export { Store } from './store/store.js';
export { ERROR_CATALOGUE } from './api/error-catalogue.js';
export { ensureFirstAdmin, hasUsers } from './operators/first-admin.js';
