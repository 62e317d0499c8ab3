// Facts the agent reads, without trusting the token, before it lets a mounted enrollment token
// replace an identity that cannot be used again (refused by the control plane for good, or lost
// from disk): which identity identity.json records, and whether the token file was written after
// this connector's certificate. Only ever metadata: the token itself is read by token-file.ts and only
// fingerprinted (identity-rejection.ts tokenFingerprint).
import { readFile, stat } from 'node:fs/promises';
import { identityPaths } from './identity-files.ts';

/** The serial identity.json records, when it is there and readable: the key of the identity's rejection record. */
export async function recordedSerial(dataDir: string): Promise<string | undefined> {
  try {
    const metadata = JSON.parse(await readFile(identityPaths(dataDir).metadata, 'utf8')) as {
      serial?: unknown;
    };
    return typeof metadata.serial === 'string' && metadata.serial.length > 0 ? metadata.serial : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the token file was last written after cert.pem. Both times come from this node's clock,
 * so no skew with the control plane enters. A guided recovery revokes the certificate and every
 * older token, and mints its token afterwards: a token written before the certificate cannot be
 * that recovery's (it is the spent bootstrap token, or another stale one).
 */
export async function tokenWrittenAfterCertificate(
  tokenFile: string | undefined,
  dataDir: string,
): Promise<boolean> {
  if (!tokenFile) return false;
  try {
    const [token, certificate] = await Promise.all([stat(tokenFile), stat(identityPaths(dataDir).cert)]);
    return token.mtimeMs > certificate.mtimeMs;
  } catch {
    return false;
  }
}
