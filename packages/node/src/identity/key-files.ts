/**
 * Private keys on disk: one private JWK per file under `<dataDir>/keys/`, named by its kid, mode
 * 0600. A key file readable by group or others is refused, as ssh does, because a leaked signing
 * key lets anyone speak for the organisation.
 */
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  importKeyPair,
  ProtocolError,
  type EncryptionKeyPair,
  type PrivateJwk,
  type SigningKeyPair,
} from '@passerelle/protocol';

export const KEYS_DIR = 'keys';
const KEY_FILE = /^[A-Za-z0-9_-]{43}\.jwk\.json$/;

export interface KeyRing {
  signing: SigningKeyPair[];
  encryption: EncryptionKeyPair[];
}

export async function writeKeyFile(dataDir: string, pair: SigningKeyPair | EncryptionKeyPair): Promise<string> {
  const dir = join(dataDir, KEYS_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${pair.kid}.jwk.json`);
  // 'wx' never overwrites an existing key: losing a private key cannot be undone.
  await writeFile(file, `${JSON.stringify(pair.privateJwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(file, 0o600);
  return file;
}

export async function readKeyRing(dataDir: string): Promise<KeyRing> {
  const dir = join(dataDir, KEYS_DIR);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => KEY_FILE.test(n)).sort();
  } catch (e) {
    throw new ProtocolError('KEY_INVALID', 'No key directory in the data directory', undefined, { cause: e });
  }
  const ring: KeyRing = { signing: [], encryption: [] };
  for (const name of names) {
    const file = join(dir, name);
    if (process.platform !== 'win32' && ((await stat(file)).mode & 0o077) !== 0) {
      throw new ProtocolError('KEY_INVALID', `Key file ${name} is readable by others; chmod 600 it`);
    }
    let jwk: PrivateJwk;
    try {
      jwk = JSON.parse(await readFile(file, 'utf8')) as PrivateJwk;
    } catch (e) {
      throw new ProtocolError('KEY_INVALID', `Key file ${name} is not JSON`, undefined, { cause: e });
    }
    const pair = await importKeyPair(jwk);
    if (`${pair.kid}.jwk.json` !== name) throw new ProtocolError('KEY_INVALID', `Key file ${name} does not hold the key its name says`);
    if (pair.publicJwk.crv === 'Ed25519') ring.signing.push(pair as SigningKeyPair);
    else ring.encryption.push(pair as EncryptionKeyPair);
  }
  if (ring.signing.length === 0 || ring.encryption.length === 0) {
    throw new ProtocolError('KEY_INVALID', 'The data directory needs at least one signing and one encryption key');
  }
  return ring;
}
