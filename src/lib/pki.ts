// Reusable X.509 helpers shared by the control plane and the connector agent.
//
// node-forge builds the ASN.1 (names, extensions, the TBS structures) and node:crypto does the key
// work (generation, signing, verification, fingerprints, key/certificate matching). The split is on
// purpose: forge's PKI layer only understands RSA keys, so `csr.sign()` / `cert.sign()` /
// `csr.verify()` cannot handle EC P-256 keys, which are the connectors' default (fast to generate,
// small, and what the enrollment troubleshooting guide lists first). Building the structures with
// forge's ASN.1 utilities and signing the DER bytes with node:crypto works for RSA and EC alike.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  generateKeyPair,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { CodedError } from './errors.ts';

const { asn1 } = forge;
// Functions forge exports but its type definitions omit.
interface ForgeAttribute {
  type?: string;
  shortName?: string;
  name?: string;
  value?: unknown;
}
const pki = forge.pki as typeof forge.pki & {
  RDNAttributesAsArray(name: forge.asn1.Asn1): ForgeAttribute[];
  certificateExtensionsToAsn1(extensions: unknown[]): forge.asn1.Asn1;
};
const fromDerStrict = asn1.fromDer as unknown as (
  bytes: string,
  options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean },
) => forge.asn1.Asn1;
const generateKeyPairAsync = promisify(generateKeyPair);

export type KeyAlgorithm = 'ec-p256' | 'ec-p384' | 'rsa-2048';

export interface KeyPairPem {
  /** PKCS#8 PEM. A secret: never log it, never send it anywhere. */
  privateKeyPem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
}

/** Generates a key pair with node:crypto (asynchronously, off the event loop). */
export async function generateKeyPairPem(algorithm: KeyAlgorithm = 'ec-p256'): Promise<KeyPairPem> {
  const encoding = {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  } as const;
  const pair =
    algorithm === 'rsa-2048'
      ? await generateKeyPairAsync('rsa', { modulusLength: 2048, ...encoding })
      : await generateKeyPairAsync('ec', {
          namedCurve: algorithm === 'ec-p384' ? 'secp384r1' : 'prime256v1',
          ...encoding,
        });
  return { privateKeyPem: pair.privateKey, publicKeyPem: pair.publicKey };
}

// ---------------------------------------------------------------------------------------------
// Signature algorithms

const OID = {
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
} as const;

const HASH_OF_SIGNATURE_OID: Record<string, 'sha256' | 'sha384' | 'sha512'> = {
  [OID.sha256WithRSA]: 'sha256',
  [OID.sha384WithRSA]: 'sha384',
  [OID.sha512WithRSA]: 'sha512',
  [OID.ecdsaWithSHA256]: 'sha256',
  [OID.ecdsaWithSHA384]: 'sha384',
  [OID.ecdsaWithSHA512]: 'sha512',
};

interface Signer {
  key: KeyObject;
  hash: 'sha256' | 'sha384';
  algorithmIdentifier: forge.asn1.Asn1;
}

function signerFor(keyPem: string | KeyObject): Signer {
  const key = typeof keyPem === 'string' ? createPrivateKey(keyPem) : keyPem;
  if (key.asymmetricKeyType === 'rsa') {
    return {
      key,
      hash: 'sha256',
      algorithmIdentifier: seq([
        oid(OID.sha256WithRSA),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
      ]),
    };
  }
  if (key.asymmetricKeyType === 'ec') {
    const p384 = key.asymmetricKeyDetails?.namedCurve === 'secp384r1';
    // RFC 5758: the ECDSA AlgorithmIdentifier has no parameters at all (not even NULL).
    return {
      key,
      hash: p384 ? 'sha384' : 'sha256',
      algorithmIdentifier: seq([oid(p384 ? OID.ecdsaWithSHA384 : OID.ecdsaWithSHA256)]),
    };
  }
  throw new CodedError('KEY_UNSUPPORTED', `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`, {
    httpStatus: 400,
  });
}

// ---------------------------------------------------------------------------------------------
// Small ASN.1 helpers on top of forge

function seq(values: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, values);
}

function oid(value: string): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
}

function toBinary(buffer: Buffer): string {
  return buffer.toString('binary');
}

function derOf(node: forge.asn1.Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

function spkiAsn1(publicKey: KeyObject): forge.asn1.Asn1 {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return asn1.fromDer(toBinary(der));
}

/** A forge distinguished name from short attributes, e.g. [{ shortName: 'CN', value: 'x' }]. */
function nameAsn1(attributes: Array<{ shortName: string; value: string }>): forge.asn1.Asn1 {
  // forge fills in the OIDs and value tags when a certificate's subject is set.
  const holder = pki.createCertificate();
  holder.setSubject(attributes.map((a) => ({ shortName: a.shortName, value: a.value })));
  return pki.distinguishedNameToAsn1(holder.subject);
}

function signedStructure(tbs: forge.asn1.Asn1, signer: Signer): Buffer {
  const tbsDer = derOf(tbs);
  const signature = cryptoSign(signer.hash, tbsDer, signer.key);
  const bitString = asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.BITSTRING,
    false,
    String.fromCharCode(0) + toBinary(signature),
  );
  return derOf(seq([asn1.fromDer(toBinary(tbsDer)), signer.algorithmIdentifier, bitString]));
}

function pemOf(label: string, der: Buffer): string {
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${body}${body.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

function derFromPem(pem: string, label: string): Buffer | undefined {
  const match = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!match?.[1]) return undefined;
  const der = Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
  return der.length > 0 ? der : undefined;
}

// ---------------------------------------------------------------------------------------------
// CSRs (PKCS#10)

/**
 * Lowercase hex SHA-256 of a public key's DER SubjectPublicKeyInfo: names the key itself, so a CSR
 * and a certificate of the same key give the same value.
 */
export function publicKeySha256(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Creates a PKCS#10 CSR with subject CN=<commonName>, signed by the key (proof of possession). */
export function createCsrPem(keyPem: string, commonName: string): string {
  const signer = signerFor(keyPem);
  const publicKey = createPublicKey(signer.key);
  const certificationRequestInfo = seq([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(0).getBytes()),
    nameAsn1([{ shortName: 'CN', value: commonName }]),
    spkiAsn1(publicKey),
    // attributes [0] IMPLICIT SET OF Attribute: empty
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, []),
  ]);
  return pemOf('CERTIFICATE REQUEST', signedStructure(certificationRequestInfo, signer));
}

export interface CsrFacts {
  subjectCommonName: string | undefined;
  /** The CSR's public key; the certificate issued for it carries exactly this key. */
  publicKey: KeyObject;
  keyType: 'rsa' | 'ec' | string;
  /** RSA modulus length in bits, when RSA. */
  modulusLength?: number;
  /** EC curve name (prime256v1, secp384r1), when EC. */
  namedCurve?: string;
}

/** Tag-length-value boundaries of one DER element, to slice exact bytes (forge re-encodes). */
function readTlv(der: Buffer, offset: number): { start: number; contentStart: number; end: number } {
  if (offset + 2 > der.length) throw new Error('truncated DER');
  let position = offset + 1;
  const first = der[position++] as number;
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count < 1 || count > 4 || position + count > der.length) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[position++] as number);
  }
  const end = position + length;
  if (end > der.length) throw new Error('truncated DER');
  return { start: offset, contentStart: position, end };
}

/**
 * Parses and verifies a PEM CSR: structure, signature (proof of possession of the private key) and
 * the key type. Throws CodedError CSR_INVALID (malformed, bad signature) or CSR_KEY_UNSUPPORTED
 * (not RSA >= 2048 or EC P-256/P-384). The subject is returned, not checked.
 */
export function verifyCsrPem(csrPem: string): CsrFacts {
  const invalid = (message: string, cause?: unknown) =>
    new CodedError('CSR_INVALID', message, { httpStatus: 400, cause });
  const der = derFromPem(csrPem, 'CERTIFICATE REQUEST') ?? derFromPem(csrPem, 'NEW CERTIFICATE REQUEST');
  if (!der) throw invalid('csrPem is not a PEM certificate request');
  let criBytes: Buffer;
  let parsed: forge.asn1.Asn1;
  try {
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) throw new Error('trailing bytes after the CSR');
    const cri = readTlv(der, outer.contentStart);
    criBytes = der.subarray(cri.start, cri.end);
    parsed = fromDerStrict(toBinary(der), { strict: true, parseAllBytes: true, decodeBitStrings: false });
  } catch (error) {
    throw invalid('csrPem is not a well-formed PKCS#10 request', error);
  }
  const [criNode, algorithmNode, signatureNode] = parsed.value as forge.asn1.Asn1[];
  const criParts = criNode?.value as forge.asn1.Asn1[] | undefined;
  const subjectNode = criParts?.[1];
  const spkiNode = criParts?.[2];
  const algorithmOidNode = (algorithmNode?.value as forge.asn1.Asn1[] | undefined)?.[0];
  if (!subjectNode || !spkiNode || !algorithmOidNode || typeof signatureNode?.value !== 'string') {
    throw invalid('csrPem is missing parts of a PKCS#10 request');
  }
  const algorithm = asn1.derToOid(String(algorithmOidNode.value));
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: derOf(spkiNode), format: 'der', type: 'spki' });
  } catch (error) {
    throw invalid('the CSR public key cannot be read', error);
  }
  const keyType = publicKey.asymmetricKeyType ?? 'unknown';
  const details = publicKey.asymmetricKeyDetails ?? {};
  const facts: CsrFacts = { subjectCommonName: undefined, publicKey, keyType };
  if (keyType === 'rsa') {
    facts.modulusLength = details.modulusLength;
    if ((details.modulusLength ?? 0) < 2048) {
      throw new CodedError('CSR_KEY_UNSUPPORTED', 'RSA keys must have at least 2048 bits', {
        httpStatus: 400,
      });
    }
    if (!algorithm.startsWith('1.2.840.113549.'))
      throw invalid('signature algorithm does not fit an RSA key');
  } else if (keyType === 'ec') {
    facts.namedCurve = details.namedCurve;
    if (details.namedCurve !== 'prime256v1' && details.namedCurve !== 'secp384r1') {
      throw new CodedError('CSR_KEY_UNSUPPORTED', 'EC keys must be on P-256 or P-384', { httpStatus: 400 });
    }
    if (!algorithm.startsWith('1.2.840.10045.')) throw invalid('signature algorithm does not fit an EC key');
  } else {
    throw new CodedError('CSR_KEY_UNSUPPORTED', `key type ${keyType} is not supported; use RSA or EC`, {
      httpStatus: 400,
    });
  }
  // Looked up only now: a key of another type (Ed25519 signs with its own algorithm) is answered
  // with CSR_KEY_UNSUPPORTED above, not with an unknown signature algorithm.
  const hash = HASH_OF_SIGNATURE_OID[algorithm];
  if (!hash) throw invalid(`unsupported CSR signature algorithm ${algorithm}`);
  // BIT STRING content: first byte is the number of unused bits.
  const signatureBytes = Buffer.from(signatureNode.value as string, 'binary');
  if (signatureBytes[0] !== 0) throw invalid('malformed CSR signature');
  let verified = false;
  try {
    verified = cryptoVerify(hash, criBytes, publicKey, signatureBytes.subarray(1));
  } catch {
    verified = false;
  }
  if (!verified) throw invalid('the CSR signature does not verify (no proof of possession)');
  try {
    const attributes = pki.RDNAttributesAsArray(subjectNode);
    const cn = attributes.find((a) => a.shortName === 'CN' || a.type === '2.5.4.3');
    facts.subjectCommonName = typeof cn?.value === 'string' ? cn.value : undefined;
  } catch (error) {
    throw invalid('the CSR subject cannot be read', error);
  }
  return facts;
}

// ---------------------------------------------------------------------------------------------
// Certificates

export interface IssueCertificateOptions {
  /** The issuer's private key (the CA's, or the subject's own key for a self-signed CA). */
  issuerKeyPem: string | KeyObject;
  /** Issuer certificate; omitted for a self-signed certificate. */
  issuerCertPem?: string;
  subjectPublicKey: KeyObject | string;
  subject: Array<{ shortName: string; value: string }>;
  notBefore: Date;
  notAfter: Date;
  isCa?: boolean;
  /** SAN entries. */
  sanUris?: string[];
  sanDnsNames?: string[];
  sanIps?: string[];
  extendedKeyUsage?: Array<'serverAuth' | 'clientAuth'>;
  /** Hex serial; random 128-bit positive when omitted. */
  serialHex?: string;
}

/** A random positive 128-bit serial as lowercase hex (first byte 0x01..0x7f, so no leading zero). */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function keyIdentifier(publicKey: KeyObject): Buffer {
  // RFC 5280 4.2.1.2 method 1 style: SHA-1 over the subjectPublicKey BIT STRING content.
  const spki = asn1.fromDer(toBinary(publicKey.export({ type: 'spki', format: 'der' })));
  const bits = (spki.value as forge.asn1.Asn1[])[1]?.value;
  const raw = typeof bits === 'string' ? bits.slice(1) : asn1.toDer(spki).getBytes();
  return createHash('sha1').update(Buffer.from(raw, 'binary')).digest();
}

function timeAsn1(date: Date): forge.asn1.Asn1 {
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

const issuerCache = new Map<string, { attributes: ForgeAttribute[]; keyIdentifier: Buffer }>();

/** The issuer Name (copied from the issuer certificate's subject) and key identifier, cached per CA. */
function issuerFacts(issuerCertPem: string): { attributes: ForgeAttribute[]; keyIdentifier: Buffer } {
  let facts = issuerCache.get(issuerCertPem);
  if (!facts) {
    const issuer = new X509Certificate(issuerCertPem);
    const tbsParts = (asn1.fromDer(toBinary(issuer.raw)).value as forge.asn1.Asn1[])[0]
      ?.value as forge.asn1.Asn1[];
    facts = {
      attributes: pki.RDNAttributesAsArray(tbsParts[5] as forge.asn1.Asn1),
      keyIdentifier: keyIdentifier(issuer.publicKey),
    };
    if (issuerCache.size > 16) issuerCache.clear();
    issuerCache.set(issuerCertPem, facts);
  }
  return facts;
}

/** Builds and signs an X.509 v3 certificate; returns PEM. */
export function issueCertificatePem(options: IssueCertificateOptions): string {
  const signer = signerFor(options.issuerKeyPem);
  const subjectKey =
    typeof options.subjectPublicKey === 'string'
      ? createPublicKey(options.subjectPublicKey)
      : options.subjectPublicKey;
  const holder = pki.createCertificate();
  holder.setSubject(options.subject.map((a) => ({ ...a })));
  let issuerKeyId: Buffer | undefined;
  if (options.issuerCertPem) {
    const issuer = issuerFacts(options.issuerCertPem);
    holder.issuer.attributes = issuer.attributes as typeof holder.issuer.attributes;
    issuerKeyId = issuer.keyIdentifier;
  } else {
    holder.setIssuer(options.subject.map((a) => ({ ...a })));
  }
  const extensions: Record<string, unknown>[] = [
    { name: 'basicConstraints', cA: options.isCa === true, critical: true },
    options.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : {
          name: 'keyUsage',
          digitalSignature: true,
          keyEncipherment: subjectKey.asymmetricKeyType === 'rsa',
          critical: true,
        },
    {
      name: 'subjectKeyIdentifier',
      value: asn1.create(
        asn1.Class.UNIVERSAL,
        asn1.Type.OCTETSTRING,
        false,
        toBinary(keyIdentifier(subjectKey)),
      ),
    },
  ];
  if (issuerKeyId) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: toBinary(issuerKeyId) });
  if (options.extendedKeyUsage?.length) {
    const eku: Record<string, unknown> = { name: 'extKeyUsage' };
    for (const usage of options.extendedKeyUsage) eku[usage] = true;
    extensions.push(eku);
  }
  const altNames = [
    ...(options.sanDnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(options.sanUris ?? []).map((value) => ({ type: 6, value })),
    ...(options.sanIps ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  holder.setExtensions(extensions);
  const serialHex = options.serialHex ?? randomSerialHex();
  const tbs = seq([
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(2).getBytes()),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, forge.util.hexToBytes(serialHex)),
    signer.algorithmIdentifier,
    pki.distinguishedNameToAsn1(holder.issuer),
    seq([timeAsn1(options.notBefore), timeAsn1(options.notAfter)]),
    pki.distinguishedNameToAsn1(holder.subject),
    spkiAsn1(subjectKey),
    pki.certificateExtensionsToAsn1(holder.extensions),
  ]);
  return pemOf('CERTIFICATE', signedStructure(tbs, signer));
}

// ---------------------------------------------------------------------------------------------
// Facts about certificates and keys

export interface CertificateFacts {
  /** Lowercase hex without leading zeros' sign byte, as recorded by the control plane. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** Lowercase hex SHA-256 of the DER certificate, no separators. */
  fingerprintSha256: string;
  subjectCommonName: string | undefined;
  sanUris: string[];
  issuer: string;
}

/** Normalises a serial to lowercase hex without leading zero bytes. */
export function normalizeSerial(serial: string): string {
  const hex = serial.toLowerCase().replace(/[^0-9a-f]/g, '');
  return hex.replace(/^(00)+(?=[0-9a-f]{2})/, '') || '00';
}

export function parseCertificateFacts(certPem: string | X509Certificate): CertificateFacts {
  let cert: X509Certificate;
  try {
    cert = typeof certPem === 'string' ? new X509Certificate(certPem) : certPem;
  } catch (error) {
    throw new CodedError('CERTIFICATE_INVALID', 'not a PEM X.509 certificate', {
      httpStatus: 400,
      cause: error,
    });
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  const sanUris = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4).replace(/^"(.*)"$/, '$1'));
  return {
    serial: normalizeSerial(cert.serialNumber),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprintSha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    subjectCommonName: cn,
    sanUris,
    issuer: cert.issuer,
  };
}

/** True when the private key is the one the certificate was issued for. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** True when `certPem` was signed by the CA in `caPem` (signature and issuer name). */
export function certificateIssuedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}
