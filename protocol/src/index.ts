export * from './agent-link.js';
export * from './output-frame.js';
