import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { fetch as undiciFetch, request } from 'undici';
import type { ErrorCode } from '@passerelle/protocol';
import {
  assertPublicDestination,
  classifyAddress,
  createGuardedDispatcher,
  parseHostLiteral,
  type AddressCategory,
  type HostLookup,
} from '../src/net/address-guard.js';

async function codeOf(fn: () => Promise<unknown>): Promise<ErrorCode | undefined> {
  try {
    await fn();
  } catch (e) {
    return (e as { code?: ErrorCode }).code;
  }
  return undefined;
}

function syncCodeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: ErrorCode }).code;
  }
  return undefined;
}

/** A resolver answering from a table: tests never use the network's DNS. */
const table = (entries: Record<string, string[]>): HostLookup & { calls: string[] } => {
  const calls: string[] = [];
  const lookup = async (host: string) => {
    calls.push(host);
    const found = entries[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
  return Object.assign(lookup, { calls });
};

describe('classifyAddress', () => {
  it.each<[string, AddressCategory]>([
    // IPv4
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.254', 'private'],
    ['100.128.0.1', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['172.15.255.255', 'public'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['192.88.99.1', 'reserved'],
    ['192.168.1.1', 'private'],
    ['198.18.0.1', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['198.20.0.1', 'public'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['1.1.1.1', 'public'],
    ['8.8.8.8', 'public'],
    ['223.255.255.255', 'public'],
    // IPv6
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::FFFF:A9FE:A9FE', 'link-local'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::ffff:8.8.8.8', 'public'],
    ['::ffff:0:127.0.0.1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['::192.168.0.1', 'private'],
    ['::8.8.8.8', 'reserved'],
    ['::2', 'reserved'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['64:ff9b::a00:1', 'private'],
    ['64:ff9b::169.254.169.254', 'link-local'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['64:ff9b:1::8.8.8.8', 'private'],
    ['64:ff9b:1::10.0.0.1', 'private'],
    ['100::1', 'reserved'],
    ['2001::1', 'reserved'],
    ['2001:2::1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:c0a8:101::1', 'private'],
    ['2002:a9fe:a9fe::', 'link-local'],
    ['2002:808:808::1', 'public'],
    ['3fff::1', 'reserved'],
    ['5f00::1', 'reserved'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'private'],
    ['ff02::1', 'multicast'],
    ['ff0e::101', 'multicast'],
    ['2001:4860:4860::8888', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['2a00:1450:4001:81c::200e', 'public'],
    ['4000::1', 'reserved'],
    ['::ffff:255.255.255.255', 'reserved'],
  ])('%s is %s', (ip, category) => {
    expect(classifyAddress(ip)).toBe(category);
  });

  it.each(['0177.0.0.1', '2130706433', '127.1', '0x7f.1', 'localhost', '', '1.2.3.4.5', '[::1', '::1::2', 'fe80::g'])(
    'refuses %j instead of guessing',
    (ip) => {
      expect(syncCodeOf(() => classifyAddress(ip))).toBe('MALFORMED');
    },
  );
});

describe('parseHostLiteral', () => {
  it.each<[string, { family: 4 | 6; address: string } | undefined]>([
    ['127.0.0.1', { family: 4, address: '127.0.0.1' }],
    ['2130706433', { family: 4, address: '127.0.0.1' }],
    ['0177.0.0.1', { family: 4, address: '127.0.0.1' }],
    ['0x7f.1', { family: 4, address: '127.0.0.1' }],
    ['0x7f000001', { family: 4, address: '127.0.0.1' }],
    ['017700000001', { family: 4, address: '127.0.0.1' }],
    ['127.1', { family: 4, address: '127.0.0.1' }],
    ['127.0.0.1.', { family: 4, address: '127.0.0.1' }],
    ['0', { family: 4, address: '0.0.0.0' }],
    ['10.1', { family: 4, address: '10.0.0.1' }],
    ['0xa9.0376.0xa9fe', { family: 4, address: '169.254.169.254' }],
    ['%31%32%37.0.0.1', { family: 4, address: '127.0.0.1' }],
    ['::1', { family: 6, address: '::1' }],
    ['[::1]', { family: 6, address: '::1' }],
    ['[0:0:0:0:0:0:0:1]', { family: 6, address: '::1' }],
    ['[::ffff:127.0.0.1]', { family: 6, address: '::ffff:7f00:1' }],
    ['[64:ff9b::10.0.0.1]', { family: 6, address: '64:ff9b::a00:1' }],
    ['[FE80::1]', { family: 6, address: 'fe80::1' }],
    ['peer.example', undefined],
    ['PEER.Example', undefined],
    ['localhost', undefined],
  ])('%s', (host, expected) => {
    expect(parseHostLiteral(host)).toEqual(expected);
  });

  it('agrees with the WHATWG URL parser that fetch uses', () => {
    expect(new URL('http://2130706433/').hostname).toBe('127.0.0.1');
    expect(new URL('http://0x7f.1/').hostname).toBe('127.0.0.1');
  });

  it.each(['', '1.2.3.256', '0x100000000', '[fe80::1%25eth0]', 'fe80::1%eth0', 'a b', 'evil.example/x', 'user@host', 'host:80', '[::1]:80', 'a\\b', '[not-ip]'])(
    'refuses %j',
    (host) => {
      expect(syncCodeOf(() => parseHostLiteral(host))).toBe('MALFORMED');
    },
  );

  it.each(['2130706433', '0177.0.0.1', '0x7f.1', '127.1', '[::ffff:127.0.0.1]', '[64:ff9b::7f00:1]', '[2002:7f00:1::]'])(
    '%s is recognised as loopback after normalisation',
    (host) => {
      const literal = parseHostLiteral(host);
      expect(literal && classifyAddress(literal.address)).toBe('loopback');
    },
  );
});

describe('assertPublicDestination', () => {
  const lookup = table({
    'peer.example': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
    'mixed.example': ['93.184.215.14', '10.0.0.7'],
    'v6-private.example': ['fd00::7'],
    'metadata.example': ['169.254.169.254'],
    'multicast.example': ['224.0.0.251'],
    'zero.example': ['0.0.0.0'],
    'empty.example': [],
  });

  it('accepts names resolving only to public addresses and returns them', async () => {
    await expect(assertPublicDestination('https://peer.example/.well-known/passerelle', { allowPrivate: false, lookup })).resolves.toEqual([
      '93.184.215.14',
      '2606:2800:21f:cb07:6820:80da:af6b:8b2c',
    ]);
    await expect(assertPublicDestination('https://8.8.8.8/', { allowPrivate: false, lookup })).resolves.toEqual(['8.8.8.8']);
    await expect(assertPublicDestination('https://[2606:4700::1111]:8443/', { allowPrivate: false, lookup })).resolves.toEqual(['2606:4700::1111']);
  });

  it.each([
    'http://127.0.0.1:4001/inbox',
    'http://2130706433/',
    'http://0177.0.0.1/',
    'http://0x7f.1/',
    'http://127.1/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/latest/meta-data',
    'http://[64:ff9b::a00:1]/',
    'http://[2002:c0a8:101::]/',
    'http://[fe80::1]/',
    'http://[fc00::1]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/',
    'http://0/',
    'https://mixed.example/',
    'https://v6-private.example/',
    'https://metadata.example/',
    'https://multicast.example/',
  ])('refuses %s', async (url) => {
    expect(await codeOf(() => assertPublicDestination(url, { allowPrivate: false, lookup }))).toBe('PEER_UNREACHABLE');
  });

  it('explains the refusal', async () => {
    await expect(assertPublicDestination('https://mixed.example/', { allowPrivate: false, lookup })).rejects.toThrow(
      /mixed\.example: 10\.0\.0\.7 is a private address/,
    );
  });

  it('does not resolve IP literals', async () => {
    const spy = table({});
    await codeOf(() => assertPublicDestination('http://2130706433/', { allowPrivate: false, lookup: spy }));
    expect(spy.calls).toEqual([]);
  });

  it('lets local development mode reach loopback, private and link-local addresses only', async () => {
    for (const url of ['http://127.0.0.1:4001/', 'http://[::1]/', 'https://mixed.example/', 'https://v6-private.example/', 'https://metadata.example/']) {
      await expect(assertPublicDestination(url, { allowPrivate: true, lookup })).resolves.toBeInstanceOf(Array);
    }
    for (const url of ['https://multicast.example/', 'https://zero.example/', 'http://0.0.0.0/', 'http://[::]/', 'http://192.0.2.1/', 'http://[ff02::1]/']) {
      expect(await codeOf(() => assertPublicDestination(url, { allowPrivate: true, lookup }))).toBe('PEER_UNREACHABLE');
    }
  });

  it('turns resolution failures into PEER_UNREACHABLE', async () => {
    expect(await codeOf(() => assertPublicDestination('https://unknown.example/', { allowPrivate: false, lookup }))).toBe('PEER_UNREACHABLE');
    expect(await codeOf(() => assertPublicDestination('https://empty.example/', { allowPrivate: false, lookup }))).toBe('PEER_UNREACHABLE');
  });

  it.each(['not a url', '/relative', 'ftp://peer.example/', 'file:///etc/passwd', 'https://user:pw@peer.example/'])('refuses %j as MALFORMED', async (url) => {
    expect(await codeOf(() => assertPublicDestination(url, { allowPrivate: false, lookup }))).toBe('MALFORMED');
  });
});

describe('createGuardedDispatcher', () => {
  let server: FastifyInstance;
  let port: number;
  const opts = { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 };

  beforeAll(async () => {
    server = Fastify();
    server.get('/', async () => ({ ok: true }));
    await server.listen({ host: '127.0.0.1', port: 0 });
    const address = server.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    port = address.port;
  });

  afterAll(async () => {
    await server.close();
  });

  async function refusalOf(fn: () => Promise<unknown>): Promise<ErrorCode | undefined> {
    try {
      await fn();
    } catch (e) {
      const err = e as { code?: ErrorCode; cause?: { code?: ErrorCode } };
      return err.code === 'PEER_UNREACHABLE' ? err.code : err.cause?.code;
    }
    return undefined;
  }

  it('refuses to connect to a server on 127.0.0.1 unless in local development mode', async () => {
    const guarded = createGuardedDispatcher({ allowPrivate: false, ...opts });
    const connections = vi.fn();
    server.server.on('connection', connections);
    try {
      for (const host of ['127.0.0.1', '2130706433', '0x7f.1', '127.1']) {
        expect(await refusalOf(() => request(`http://${host}:${port}/`, { dispatcher: guarded }))).toBe('PEER_UNREACHABLE');
      }
      expect(await refusalOf(() => undiciFetch(`http://127.0.0.1:${port}/`, { dispatcher: guarded, redirect: 'manual' }))).toBe('PEER_UNREACHABLE');
      expect(connections).not.toHaveBeenCalled();
    } finally {
      server.server.off('connection', connections);
      await guarded.close();
    }

    const open = createGuardedDispatcher({ allowPrivate: true, ...opts });
    try {
      const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: open });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ ok: true });
    } finally {
      await open.close();
    }
  });

  it('checks names inside the connection, so a rebinding after the pre-flight check is refused', async () => {
    // The pre-flight check sees a public address; by the time the socket connects the name points at loopback.
    let answer = ['93.184.215.14'];
    const lookup: HostLookup = async () => answer;
    await expect(assertPublicDestination(`http://rebind.example:${port}/`, { allowPrivate: false, lookup })).resolves.toEqual(['93.184.215.14']);
    answer = ['127.0.0.1'];
    const guarded = createGuardedDispatcher({ allowPrivate: false, ...opts, lookup });
    try {
      expect(await refusalOf(() => request(`http://rebind.example:${port}/`, { dispatcher: guarded }))).toBe('PEER_UNREACHABLE');
    } finally {
      await guarded.close();
    }
  });

  it('connects by name through the injected resolver in local development mode', async () => {
    const lookup = table({ 'peer.test': ['127.0.0.1'] });
    const open = createGuardedDispatcher({ allowPrivate: true, ...opts, lookup });
    try {
      const res = await request(`http://peer.test:${port}/`, { dispatcher: open });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(lookup.calls).toContain('peer.test');
    } finally {
      await open.close();
    }
    // A name with a loopback and a public address is refused as a whole, not raced.
    const guarded = createGuardedDispatcher({ allowPrivate: false, ...opts, lookup: table({ 'peer.test': ['93.184.215.14', '127.0.0.1'] }) });
    try {
      expect(await refusalOf(() => request(`http://peer.test:${port}/`, { dispatcher: guarded }))).toBe('PEER_UNREACHABLE');
    } finally {
      await guarded.close();
    }
  });
});
