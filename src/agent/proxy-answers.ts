// A proxy's own error page where the control plane's JSON answer should be, read for what the
// troubleshooting guide calls it. nginx with ssl_verify_client answers a request whose TLS connection
// carried no client certificate with "400 Bad Request" and an HTML page "No required SSL certificate
// was sent" (its internal status 496, which an error_page may pass on). Unread, that was a generic
// HTTP_400 with no wording of the guide's, retried at every heartbeat for ever.
import { CodedError } from '../lib/errors.ts';
import type { JsonAnswer } from '../lib/https-json.ts';

/** nginx's words for it (the page's title and body), and the reason phrase of its status 496. */
const CERTIFICATE_REQUIRED_PAGE = /no required ssl certificate was sent|ssl certificate required/i;

/** How much of a page is searched: the words are in its first lines, and a hostile page is long. */
const PAGE_PREFIX = 4096;

/**
 * The guide's "client certificate required" for a proxy's page saying no client certificate came,
 * as the control plane's own CLIENT_CERTIFICATE_REQUIRED would be (so a paired agent reports it
 * the way it reports that answer), or undefined for any other answer. Only a body that is not JSON
 * is read: a JSON answer is the control plane's, and speaks for itself.
 */
export function proxyCertificateRequired(
  answer: Pick<JsonAnswer, 'status' | 'text' | 'json'>,
  path: string,
): CodedError | undefined {
  if (answer.json !== undefined || (answer.status !== 400 && answer.status !== 496)) return undefined;
  const said = CERTIFICATE_REQUIRED_PAGE.exec(answer.text.slice(0, PAGE_PREFIX));
  if (!said) return undefined;
  return new CodedError(
    'CLIENT_CERTIFICATE_REQUIRED',
    `client certificate required: a proxy in front of the control plane answered ${path} with HTTP ` +
      `${answer.status} "${said[0]}" (its own error page, not the control plane's answer): it requires a ` +
      'client certificate on this connection and received none',
    { httpStatus: answer.status, temporary: false, details: { path, answeredBy: 'proxy' } },
  );
}
