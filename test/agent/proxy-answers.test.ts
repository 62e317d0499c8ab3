// Which answers are read as a proxy's "client certificate required" page: only a body that is not
// the contract's JSON, with the status nginx uses for it and its words. (refusal-causes.test.ts plays
// the page for real, over HTTPS, on a heartbeat and on an enrollment.)
import test from 'ava';
import { proxyCertificateRequired } from '../../src/agent/proxy-answers.ts';

const PAGE =
  '<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n' +
  '<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n' +
  '<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

test("nginx's page (400, or 496 passed on by an error_page) is the guide's client certificate required", (t) => {
  for (const status of [400, 496]) {
    const error = proxyCertificateRequired({ status, text: PAGE, json: undefined }, '/v1/heartbeat');
    t.is(error?.code, 'CLIENT_CERTIFICATE_REQUIRED');
    t.is(error?.httpStatus, status);
    t.false(error?.temporary);
    t.regex(
      error?.message ?? '',
      /^client certificate required: a proxy in front of the control plane answered \/v1\/heartbeat with HTTP \d+ "No required SSL certificate was sent"/,
    );
  }
});

test("the control plane's JSON, another status or another page stay what they are", (t) => {
  const json = { error: { code: 'CSR_INVALID', message: 'No required SSL certificate was sent' } };
  t.is(proxyCertificateRequired({ status: 400, text: JSON.stringify(json), json }, '/v1/enroll'), undefined);
  t.is(proxyCertificateRequired({ status: 502, text: PAGE, json: undefined }, '/v1/heartbeat'), undefined);
  const other =
    '<html><head><title>400 Bad Request</title></head><body>Request Header Or Cookie Too Large</body></html>';
  t.is(proxyCertificateRequired({ status: 400, text: other, json: undefined }, '/v1/heartbeat'), undefined);
  // The words past the first 4 KiB of a page are not searched.
  const late = `${' '.repeat(5000)}No required SSL certificate was sent`;
  t.is(proxyCertificateRequired({ status: 400, text: late, json: undefined }, '/v1/heartbeat'), undefined);
});
