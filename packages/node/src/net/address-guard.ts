/**
 * SSRF defence for every outbound connection a node makes (peer documents, deliveries).
 *
 * Peer URLs come from node documents and configuration, so a hostile or mistaken entry could
 * point the node at its own loopback, the LAN or a cloud metadata service. Two layers:
 * - assertPublicDestination: a pre-flight check with a clear error for operators;
 * - createGuardedDispatcher: the check again inside undici's connector, on the very addresses the
 *   socket connects to, so a name that resolves differently between check and connect (DNS
 *   rebinding) is still refused.
 *
 * Redirects are never followed by this module. Callers must send requests with
 * `redirect: 'manual'` (fetch) or without a redirect interceptor (undici.request), and treat any
 * 3xx answer as PEER_RESPONSE_INVALID: a redirect would move the request to an unchecked origin.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { ProtocolError } from '@passerelle/protocol';

export type AddressCategory = 'loopback' | 'private' | 'link-local' | 'unspecified' | 'multicast' | 'reserved' | 'public';

/** Resolves a host name to IP address strings (both families). */
export type HostLookup = (host: string) => Promise<string[]>;

/** Categories a node in explicit local development mode may reach; the others are never valid peers. */
const PRIVATE_CATEGORIES: ReadonlySet<AddressCategory> = new Set(['loopback', 'private', 'link-local']);

// IPv4 special-purpose blocks (IANA IPv4 Special-Purpose Address Registry, RFC 6890), checked in order.
const IPV4_BLOCKS: readonly (readonly [prefix: string, bits: number, category: AddressCategory])[] = [
  ['0.0.0.0', 8, 'unspecified'], // "this network"; connecting to 0.0.0.0 reaches the local host
  ['10.0.0.0', 8, 'private'], // RFC 1918
  ['100.64.0.0', 10, 'private'], // RFC 6598 shared address space (carrier-grade NAT)
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'], // includes cloud metadata endpoints
  ['172.16.0.0', 12, 'private'], // RFC 1918
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'reserved'], // TEST-NET-1 (RFC 5737)
  ['192.88.99.0', 24, 'reserved'], // deprecated 6to4 relay anycast (RFC 7526)
  ['192.168.0.0', 16, 'private'], // RFC 1918
  ['198.18.0.0', 15, 'reserved'], // benchmarking (RFC 2544)
  ['198.51.100.0', 24, 'reserved'], // TEST-NET-2
  ['203.0.113.0', 24, 'reserved'], // TEST-NET-3
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // future use, and 255.255.255.255 limited broadcast
];

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

const IPV4_TABLE = IPV4_BLOCKS.map(([prefix, bits, category]) => {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (ipv4ToInt(prefix) & mask) >>> 0, mask, category };
});

function classifyIPv4Int(value: number): AddressCategory {
  for (const { base, mask, category } of IPV4_TABLE) if (((value & mask) >>> 0) === base) return category;
  return 'public';
}

/** The eight 16-bit groups of a textual IPv6 address already validated by net.isIPv6. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4ToInt(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const front = parse(head);
  if (tail === undefined) return front;
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function embeddedIPv4(high: number, low: number): number {
  return ((high << 16) >>> 0) + low;
}

function classifyIPv6(address: string): AddressCategory {
  const g = ipv6Groups(address);
  const at = (i: number): number => g[i] ?? 0;
  const zeroUpTo = (n: number): boolean => g.slice(0, n).every((x) => x === 0);
  const lastV4 = classifyIPv4Int(embeddedIPv4(at(6), at(7)));

  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && at(7) === 1) return 'loopback';
  // ::ffff:0:0/96 IPv4-mapped (RFC 4291 §2.5.5.2): the socket talks IPv4 to the embedded address.
  if (zeroUpTo(5) && at(5) === 0xffff) return lastV4;
  // ::ffff:0:0:0/96 IPv4-translated (RFC 2765 §2.1).
  if (zeroUpTo(4) && at(4) === 0xffff && at(5) === 0) return lastV4;
  // ::/96 IPv4-compatible (deprecated, RFC 4291 §2.5.5.1): never a legitimate peer address.
  if (zeroUpTo(6)) return lastV4 === 'public' || lastV4 === 'unspecified' ? 'reserved' : lastV4;
  // 64:ff9b::/96 well-known NAT64 prefix (RFC 6052): the translator connects to the embedded IPv4.
  if (at(0) === 0x64 && at(1) === 0xff9b && at(2) === 0 && at(3) === 0 && at(4) === 0 && at(5) === 0) return lastV4;
  // 64:ff9b:1::/48 local-use NAT64 prefix (RFC 8215): reaches a local network by definition.
  if (at(0) === 0x64 && at(1) === 0xff9b && at(2) === 1) return lastV4 === 'public' ? 'private' : lastV4;
  if (at(0) < 0x0100) return 'reserved';
  // 2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID); 2001:db8::/32 documentation.
  if (at(0) === 0x2001 && (at(1) < 0x0200 || at(1) === 0x0db8)) return 'reserved';
  // 2002::/16 6to4 (RFC 3056): the relay forwards to the IPv4 address in bits 16..47.
  if (at(0) === 0x2002) return classifyIPv4Int(embeddedIPv4(at(1), at(2)));
  if ((at(0) & 0xfff0) === 0x3ff0) return 'reserved'; // 3fff::/20 documentation (RFC 9637)
  if (at(0) === 0x5f00) return 'reserved'; // SRv6 SIDs (RFC 9602)
  if ((at(0) & 0xfe00) === 0xfc00) return 'private'; // unique local (RFC 4193)
  if ((at(0) & 0xffc0) === 0xfe80) return 'link-local';
  if ((at(0) & 0xffc0) === 0xfec0) return 'private'; // deprecated site-local (RFC 3879)
  if ((at(0) & 0xff00) === 0xff00) return 'multicast';
  if ((at(0) & 0xe000) === 0x2000) return 'public'; // 2000::/3 global unicast
  // Outside 2000::/3: unassigned or special-purpose (for example 100::/64 discard-only, RFC 6666).
  return 'reserved';
}

/**
 * Classifies an IP address in standard notation (dotted-quad IPv4, RFC 4291 IPv6, optionally with
 * a zone id). Other IPv4 notations must go through parseHostLiteral first: they are refused here
 * (MALFORMED) rather than guessed at.
 */
export function classifyAddress(ip: string): AddressCategory {
  const address = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  if (isIPv4(address)) return classifyIPv4Int(ipv4ToInt(address));
  if (isIPv6(address)) return classifyIPv6(address.split('%')[0]!);
  throw new ProtocolError('MALFORMED', `Not an IP address: ${JSON.stringify(ip)}`);
}

export interface HostLiteral {
  family: 4 | 6;
  /** Canonical form (WHATWG URL serialisation, IPv6 without brackets). */
  address: string;
}

/**
 * Reads a URL host the way the URL parser (and so fetch and undici) will: `2130706433`,
 * `0177.0.0.1`, `0x7f.1`, `127.1` and `127.0.0.1.` are all 127.0.0.1 (WHATWG URL §3.5, IPv4
 * parser). Returns the IP for an IP literal, undefined for a domain name; throws MALFORMED for
 * anything that is not a valid host (including IPv6 zone ids, which URLs cannot carry).
 */
export function parseHostLiteral(host: string): HostLiteral | undefined {
  let candidate = host;
  if (isIPv6(candidate)) candidate = `[${candidate}]`;
  const bracketed = candidate.startsWith('[');
  if (candidate === '' || (bracketed ? !/^\[[0-9A-Fa-f:.]+\]$/.test(candidate) : /[/?#@\\\s:[\]]/.test(candidate))) {
    throw new ProtocolError('MALFORMED', `Invalid host: ${JSON.stringify(host)}`);
  }
  let hostname: string;
  try {
    hostname = new URL(`http://${candidate}/`).hostname;
  } catch {
    throw new ProtocolError('MALFORMED', `Invalid host: ${JSON.stringify(host)}`);
  }
  if (hostname.startsWith('[')) return { family: 6, address: hostname.slice(1, -1) };
  if (isIPv4(hostname)) return { family: 4, address: hostname };
  return undefined;
}

const defaultLookup: HostLookup = async (host) => (await dnsLookup(host, { all: true })).map((entry) => entry.address);

function refusal(host: string, address: string, allowPrivate: boolean): ProtocolError | undefined {
  const category = classifyAddress(address);
  if (category === 'public' || (allowPrivate && PRIVATE_CATEGORIES.has(category))) return undefined;
  const hint = PRIVATE_CATEGORIES.has(category) ? ' (allowed only in local development mode)' : '';
  return new ProtocolError('PEER_UNREACHABLE', `Refusing to connect to ${host}: ${address} is a ${category} address${hint}`, {
    host,
    address,
    category,
  });
}

async function resolveChecked(host: string, allowPrivate: boolean, lookup: HostLookup): Promise<string[]> {
  const literal = parseHostLiteral(host);
  let addresses: string[];
  if (literal) addresses = [literal.address];
  else {
    try {
      addresses = await lookup(host);
    } catch (e) {
      throw new ProtocolError('PEER_UNREACHABLE', `Cannot resolve ${host}`, { host }, { cause: e });
    }
    if (addresses.length === 0) throw new ProtocolError('PEER_UNREACHABLE', `Cannot resolve ${host}`, { host });
  }
  // Every address is checked, not just the first: the connector may try any of them.
  for (const address of addresses) {
    const refused = refusal(host, address, allowPrivate);
    if (refused) throw refused;
  }
  return addresses;
}

export interface DestinationOptions {
  /** The node's explicit local development mode: loopback, private and link-local become reachable. */
  allowPrivate: boolean;
  lookup?: HostLookup;
}

/**
 * Throws PEER_UNREACHABLE unless every address `url`'s host resolves to is public (or, with
 * allowPrivate, loopback/private/link-local). MALFORMED for a URL that is not http(s) or carries
 * credentials. Returns the resolved addresses.
 */
export async function assertPublicDestination(url: string, options: DestinationOptions): Promise<string[]> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ProtocolError('MALFORMED', 'Peer URL is not an absolute URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new ProtocolError('MALFORMED', `Peer URL scheme ${parsed.protocol} is not http(s)`);
  }
  if (parsed.username !== '' || parsed.password !== '') throw new ProtocolError('MALFORMED', 'Peer URL must not carry credentials');
  return resolveChecked(parsed.hostname, options.allowPrivate, options.lookup ?? defaultLookup);
}

export interface GuardedDispatcherOptions {
  allowPrivate: boolean;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Injectable resolver (tests); defaults to the system resolver. */
  lookup?: HostLookup;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * An undici Agent whose connector refuses any destination address outside the policy. IP
 * literals are checked before the socket is created (net.connect does no lookup for them);
 * names are checked inside the socket's own lookup, on the addresses it then connects to.
 */
export function createGuardedDispatcher(options: GuardedDispatcherOptions): Agent {
  const { allowPrivate, connectTimeoutMs = 10_000, headersTimeoutMs = 30_000, bodyTimeoutMs = 30_000 } = options;
  const lookup = options.lookup ?? defaultLookup;

  const guardedLookup = (hostname: string, lookupOptions: LookupOptions, callback: LookupCallback): void => {
    resolveChecked(hostname, allowPrivate, lookup).then(
      (addresses) => {
        const wanted = lookupOptions.family === 4 || lookupOptions.family === 'IPv4' ? 4 : lookupOptions.family === 6 || lookupOptions.family === 'IPv6' ? 6 : 0;
        const entries = addresses
          .map((address): LookupAddress => ({ address, family: isIP(address) }))
          .filter((entry) => wanted === 0 || entry.family === wanted);
        const first = entries[0];
        if (!first) {
          callback(Object.assign(new Error(`No IPv${wanted} address for ${hostname}`), { code: 'ENOTFOUND' }), '');
        } else if (lookupOptions.all) callback(null, entries);
        else callback(null, first.address, first.family);
      },
      (err: unknown) => callback(err as NodeJS.ErrnoException, ''),
    );
  };

  const connector = buildConnector({ timeout: connectTimeoutMs, lookup: guardedLookup });
  const connect: buildConnector.connector = (connectOptions, callback) => {
    const literal = isIP(connectOptions.hostname) !== 0 ? connectOptions.hostname : undefined;
    const refused = literal === undefined ? undefined : refusal(literal, literal, allowPrivate);
    if (refused) {
      callback(refused, null);
      return;
    }
    connector(connectOptions, callback);
  };

  return new Agent({ connect, headersTimeout: headersTimeoutMs, bodyTimeout: bodyTimeoutMs });
}
