export * from './errors.js';
export * from './encoding.js';
export * from './vocabulary.js';
export * from './keys.js';
export * from './jose-policy.js';
export * from './jws.js';
