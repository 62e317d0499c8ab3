// The PKI of a local test cluster: one CA that signs the API server's serving certificate and the
// client certificates (admin, controller-manager), plus the service-account signing key pair.
// Keys are generated natively (node:crypto); certificates are built and signed with node-forge.
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { randomSerialHex } from '../../src/lib/pki.ts';

export interface KeyAndCertificate {
  keyPem: string;
  certPem: string;
}

export interface ClusterPki {
  ca: KeyAndCertificate;
  apiServer: KeyAndCertificate;
  admin: KeyAndCertificate;
  controllerManager: KeyAndCertificate;
  serviceAccountKeyPem: string;
  serviceAccountPublicKeyPem: string;
}

export interface ClusterPkiFiles {
  caCert: string;
  caKey: string;
  apiServerCert: string;
  apiServerKey: string;
  adminCert: string;
  adminKey: string;
  controllerManagerCert: string;
  controllerManagerKey: string;
  serviceAccountKey: string;
  serviceAccountPublicKey: string;
}

function rsaKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

interface CertificateRequest {
  commonName: string;
  organization?: string;
  isCa?: boolean;
  serverNames?: { dns: string[]; ips: string[] };
  clientAuth?: boolean;
  validDays: number;
}

function signCertificate(
  request: CertificateRequest,
  subjectPublicKeyPem: string,
  issuer: { keyPem: string; certPem: string } | 'self',
  selfKeyPem?: string,
): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(subjectPublicKeyPem);
  // Positive and minimally encoded: Go's x509 (the API server) refuses a serial with a redundant
  // leading zero byte, which the earlier odd-length hex produced about one time in sixteen.
  cert.serialNumber = randomSerialHex();
  const notBefore = new Date(Date.now() - 60_000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = new Date(notBefore.getTime() + request.validDays * 86_400_000);
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: request.commonName }];
  if (request.organization) subject.push({ name: 'organizationName', value: request.organization });
  cert.setSubject(subject);
  const issuerCert = issuer === 'self' ? undefined : forge.pki.certificateFromPem(issuer.certPem);
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: request.isCa === true, critical: true },
    request.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!request.isCa) {
    extensions.push({
      name: 'extKeyUsage',
      serverAuth: request.serverNames !== undefined,
      clientAuth: request.clientAuth === true,
    });
  }
  if (request.serverNames) {
    extensions.push({
      name: 'subjectAltName',
      altNames: [
        ...request.serverNames.dns.map((value) => ({ type: 2, value })),
        ...request.serverNames.ips.map((ip) => ({ type: 7, ip })),
      ],
    });
  }
  cert.setExtensions(extensions);
  const signingKeyPem = issuer === 'self' ? selfKeyPem : issuer.keyPem;
  if (!signingKeyPem) throw new Error('a self-signed certificate needs its own key');
  cert.sign(forge.pki.privateKeyFromPem(signingKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

function issue(request: CertificateRequest, ca: KeyAndCertificate): KeyAndCertificate {
  const keys = rsaKeyPair();
  return { keyPem: keys.privateKeyPem, certPem: signCertificate(request, keys.publicKeyPem, ca) };
}

/** Builds every key and certificate a local cluster needs, valid for `validDays`. */
export function createClusterPki(options: { serviceClusterIp: string; validDays?: number }): ClusterPki {
  const validDays = options.validDays ?? 7;
  const caKeys = rsaKeyPair();
  const ca: KeyAndCertificate = {
    keyPem: caKeys.privateKeyPem,
    certPem: signCertificate(
      { commonName: 'vaultpam-local-cluster-ca', isCa: true, validDays },
      caKeys.publicKeyPem,
      'self',
      caKeys.privateKeyPem,
    ),
  };
  const apiServer = issue(
    {
      commonName: 'kube-apiserver',
      serverNames: {
        dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
        ips: ['127.0.0.1', options.serviceClusterIp],
      },
      validDays,
    },
    ca,
  );
  // system:masters is bound to cluster-admin by the API server's bootstrap policy.
  const admin = issue(
    { commonName: 'vaultpam-test-admin', organization: 'system:masters', clientAuth: true, validDays },
    ca,
  );
  const controllerManager = issue(
    { commonName: 'system:kube-controller-manager', clientAuth: true, validDays },
    ca,
  );
  const serviceAccount = rsaKeyPair();
  return {
    ca,
    apiServer,
    admin,
    controllerManager,
    serviceAccountKeyPem: serviceAccount.privateKeyPem,
    serviceAccountPublicKeyPem: serviceAccount.publicKeyPem,
  };
}

/** Writes the PKI into `dir` (private keys mode 0600) and returns the file paths. */
export async function writeClusterPki(dir: string, pki: ClusterPki): Promise<ClusterPkiFiles> {
  const files: ClusterPkiFiles = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    apiServerCert: join(dir, 'apiserver.crt'),
    apiServerKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    controllerManagerCert: join(dir, 'controller-manager.crt'),
    controllerManagerKey: join(dir, 'controller-manager.key'),
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPublicKey: join(dir, 'sa.pub'),
  };
  const secret = { mode: 0o600 } as const;
  await Promise.all([
    writeFile(files.caCert, pki.ca.certPem),
    writeFile(files.caKey, pki.ca.keyPem, secret),
    writeFile(files.apiServerCert, pki.apiServer.certPem),
    writeFile(files.apiServerKey, pki.apiServer.keyPem, secret),
    writeFile(files.adminCert, pki.admin.certPem),
    writeFile(files.adminKey, pki.admin.keyPem, secret),
    writeFile(files.controllerManagerCert, pki.controllerManager.certPem),
    writeFile(files.controllerManagerKey, pki.controllerManager.keyPem, secret),
    writeFile(files.serviceAccountKey, pki.serviceAccountKeyPem, secret),
    writeFile(files.serviceAccountPublicKey, pki.serviceAccountPublicKeyPem),
  ]);
  return files;
}
