export * from './agent-link.js';
