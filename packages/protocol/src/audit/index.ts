export * from './merkle.js';
export * from './checkpoint.js';
