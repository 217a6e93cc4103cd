/**
 * `@jobfleet/protocol/agent`: what an agent needs at run time, without zod. Types come from
 * the main entry point (`import type` costs nothing at run time).
 */
export * from './link-basics.js';
export * from './agent-checks.js';
export { encodeOutputFrame, outputBuffer } from './output-frame.js';
