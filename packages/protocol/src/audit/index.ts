export * from './merkle.js';
export * from './checkpoint.js';
export * from './leaf.js';
export * from './events.js';
export * from './bundle.js';
export * from './verify-bundle.js';
export * from './report.js';
