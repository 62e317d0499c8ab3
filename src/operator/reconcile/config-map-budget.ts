// What a control plane's CA bundle may weigh. Kubernetes holds a ConfigMap's data (its keys and
// values together, counted in bytes) to 1 MiB, and the operator writes the control plane's CA bundle
// into every Connector's own ConfigMap, next to the connector's configuration and the control-plane
// URL (desired-objects.ts). A bundle that fills its own CA ConfigMap (which Kubernetes accepts) would
// make every such ConfigMap too large: a refusal that no Connector author can fix, since the bundle
// is the control plane's admin's. So the bundle is measured where it is read (the ControlPlane's
// check, the operator's default at start), against the limit less what the rest of a Connector's
// ConfigMap can take at most, and refused there, on the resource its admin owns.

/** What Kubernetes allows a ConfigMap's data and binaryData to hold, keys and values, in bytes. */
export const CONFIG_MAP_DATA_LIMIT = 1024 * 1024;

/**
 * Kept for everything else in a Connector's ConfigMap: its keys, the connector's configuration and
 * the control-plane URL. At the most the CRDs allow (spec.connector's fields, and a URL of
 * MAX_CONTROL_PLANE_URL_LENGTH characters of up to 4 bytes each) that comes to at most 12,843 bytes;
 * a unit test builds that worst case and holds it within.
 */
export const CONNECTOR_CONFIG_RESERVE = 16 * 1024;

/** The largest CA bundle a control plane may give its connectors, in bytes (UTF-8). */
export const CA_BUNDLE_MAX_BYTES = CONFIG_MAP_DATA_LIMIT - CONNECTOR_CONFIG_RESERVE;

/** The size of a ConfigMap's data as Kubernetes counts it against CONFIG_MAP_DATA_LIMIT. */
export function configMapDataBytes(data: Readonly<Record<string, string>> | undefined): number {
  let bytes = 0;
  for (const [key, value] of Object.entries(data ?? {}))
    bytes += Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
  return bytes;
}

const figure = (n: number) => n.toLocaleString('en-US');

/**
 * Why a CA bundle cannot be handed to connectors because of its size, as the end of a sentence that
 * names where it is (e.g. `key "ca.crt" of ConfigMap ns/name ...`); undefined when it fits.
 */
export function caBundleSizeProblem(pem: string): string | undefined {
  const bytes = Buffer.byteLength(pem, 'utf8');
  if (bytes <= CA_BUNDLE_MAX_BYTES) return undefined;
  return `holds a CA bundle of ${figure(bytes)} bytes, too large to hand to connectors: the operator writes it into each Connector's ConfigMap with the connector's configuration, which Kubernetes holds to ${figure(CONFIG_MAP_DATA_LIMIT)} bytes, so the bundle may be at most ${figure(CA_BUNDLE_MAX_BYTES)} bytes; trim the bundle to the CAs that sign the control plane's serving certificate`;
}
