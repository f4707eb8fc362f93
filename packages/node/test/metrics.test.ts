import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from '../src/observability/metrics.js';

describe('Prometheus text exposition', () => {
  it('renders counters, gauges and histograms with escaped labels', async () => {
    const r = new Registry();
    const c = r.register(new Counter('x_total', 'Things.'));
    c.inc({ outcome: 'ok' });
    c.inc({ outcome: 'ok' }, 2);
    c.inc({ outcome: 'say "hi"\n' });
    r.register(new Gauge('y', 'Level.', () => [[{ state: 'queued' }, 4]]));
    const h = r.register(new Histogram('z_seconds', 'Time.', [0.1, 1]));
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    const text = await r.render();
    expect(text).toContain('# TYPE x_total counter');
    expect(text).toContain('x_total{outcome="ok"} 3');
    expect(text).toContain('x_total{outcome="say \\"hi\\"\\n"} 1');
    expect(text).toContain('y{state="queued"} 4');
    expect(text).toContain('z_seconds_bucket{le="0.1"} 1');
    expect(text).toContain('z_seconds_bucket{le="1"} 2');
    expect(text).toContain('z_seconds_bucket{le="+Inf"} 3');
    expect(text).toContain('z_seconds_sum 5.55');
    expect(text).toContain('z_seconds_count 3');
    expect(text.endsWith('\n')).toBe(true);
  });
});
