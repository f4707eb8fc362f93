import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';

describe('logger', () => {
  it('redacts personal fields and secrets that reach a log line by mistake', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger({ level: 'info', destination: destination as never });
    log.info({ messageId: '0190-id', data: { identity: { givenName: 'Awa' } }, entry: { sdJwt: 'eyJ~disclosure~' }, req: { headers: { authorization: 'Bearer pst_secret' } } }, 'x');
    const text = lines.join('');
    expect(text).toContain('0190-id');
    expect(text).not.toContain('Awa');
    expect(text).not.toContain('disclosure');
    expect(text).not.toContain('pst_secret');
  });
});
