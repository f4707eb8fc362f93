/**
 * Structured logs (pino). Call sites log identifiers, digests and codes only; the redaction list
 * is a safety net in case a personal field ever reaches a log line anyway.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.signature',
  'headers.authorization',
  'authorization',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'body',
  '*.body',
  'data',
  '*.data',
  'disclosures',
  '*.disclosures',
  'sdJwt',
  '*.sdJwt',
  'jwe',
  '*.jwe',
  'consentRecord',
  '*.consentRecord',
  'subject',
  '*.subject',
  'privateJwk',
  '*.privateJwk',
  'd',
  '*.d',
];

export function createLogger(options: { level: string; name?: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      name: options.name ?? 'passerelle-node',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination,
  );
}
