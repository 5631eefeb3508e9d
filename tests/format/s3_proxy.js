// A loopback proxy in front of s3rver for the s3:// store's tests. It adds
// what s3rver lacks and shoal relies on:
//  - SigV4 checking (s3rver accepts any version-4 signature): every request
//    is verified here, by an implementation independent of shoal's (Node's
//    crypto, its own canonicalisation), against the secret of the access
//    key; a mismatch is S3's 403 SignatureDoesNotMatch. The body's SHA-256
//    is checked against x-amz-content-sha256 too.
//  - Conditional PUT (If-None-Match: *): of racing creators of one key,
//    exactly one succeeds; the others get S3's 412 PreconditionFailed. Puts
//    of one key are serialised here while the existence check and the put
//    run.
// A second port injects faults before the same handling, for the retry
// tests: with probability `503` an S3 503 SlowDown, with probability
// `reset` a connection closed without an answer, with probability `lost`
// the request carried out but its answer lost (the connection closes
// instead: the client cannot tell whether it went through; with probability
// `lost_completion` for CompleteMultipartUpload alone), and `latency`
// ms added to every request. PUT /__shoal_faults (unsigned) with a spec as
// its body replaces the rates, for a test that wants others. GET /__shoal_faults (unsigned) on either port tells how many
// of each it injected, so a test knows its faults happened (and how many
// multipart parts it saw, so a test knows an upload went in parts), how
// many answers it lost (`lost`; `lost_completions` of them to
// CompleteMultipartUpload), how
// many conditional PUTs it refused (`conflicts`, so a test knows writers
// raced), and how many S3 requests it answered (`requests`, `gets`) and
// body bytes it sent back for GETs (`get_bytes`), so a benchmark can tell
// requests and bytes per sample.
// Usage: node s3_proxy.js LISTEN_PORT S3RVER DATA_DIR BUCKET ACCESS_KEY SECRET
//                         [FAULT_PORT 503=P,reset=P,lost=P,lost_completion=P,latency=MS]
// It starts s3rver (on a free port of its own) and listens on LISTEN_PORT
// (and FAULT_PORT) once s3rver accepts connections. When its stdin closes
// (the test that started it ended, or died) it stops s3rver and exits.
'use strict';
const child = require('child_process');
const crypto = require('crypto');
const http = require('http');
const net = require('net');
const { Writable } = require('stream');

const [listenPort, s3rver, dataDir, bucket, accessKey, secret, faultPort, faultSpec] =
  process.argv.slice(2);
const parseSpec = (spec) => Object.fromEntries((spec || '').split(',').filter(Boolean)
  .map((kv) => { const [k, v] = kv.split('='); return [k, Number(v)]; }));
let faults = parseSpec(faultSpec);
const injected = {
  slowdown: 0, reset: 0, parts: 0, conflicts: 0, requests: 0, gets: 0, get_bytes: 0, lost: 0,
  lost_completions: 0,
};
let upstreamPort = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let requestCounter = 0;

function rfc3986(text) {
  return encodeURIComponent(text).replace(
    /[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

function expectedSignature(req, signedHeaders, scope, amzDate) {
  const [path, query = ''] = req.url.split('?');
  const canonicalPath = path.split('/').map((p) => rfc3986(decodeURIComponent(p))).join('/');
  const params = query === '' ? [] : query.split('&').map((kv) => {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    const v = eq < 0 ? '' : kv.slice(eq + 1);
    return [rfc3986(decodeURIComponent(k)), rfc3986(decodeURIComponent(v))];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1));
  const canonicalQuery = params.map(([k, v]) => `${k}=${v}`).join('&');
  const canonicalHeaders = signedHeaders.map((h) =>
    `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, canonicalPath, canonicalQuery, canonicalHeaders,
    signedHeaders.join(';'), req.headers['x-amz-content-sha256']].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const [date, region, service] = scope.split('/');
  let key = hmac('AWS4' + secret, date);
  key = hmac(key, region);
  key = hmac(key, service);
  key = hmac(key, 'aws4_request');
  return crypto.createHmac('sha256', key).update(toSign).digest('hex');
}

function fail(res, status, code, message) {
  const id = `proxy-${++requestCounter}`;
  res.writeHead(status, { 'content-type': 'application/xml', 'x-amz-request-id': id });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
          `<Message>${message}</Message><RequestId>${id}</RequestId></Error>`);
}

// s3rver answers a PUT of an object, or a multipart completion, once the
// bytes are handed to its file stream, before they are all in the file: a
// read right after it can find no object, or a short one. S3 reads after a
// write see the whole object, so such an answer waits here until a HEAD
// does (bounded; a miss is logged). The size to wait for: the body's, or
// for a completion the sum of the parts it names (their sizes seen here).
const partSizes = new Map();  // uploadId -> Map(partNumber -> bytes)
const uploadIdOf = (req) => (/[?&]uploadId=([^&]+)/.exec(req.url) || [])[1];

function writtenSize(req, body) {
  const uploadId = uploadIdOf(req);
  if (req.method === 'PUT' && req.url.split('?')[0].split('/').length > 2 &&
      !req.headers['x-amz-copy-source']) {
    const part = (/[?&]partNumber=(\d+)/.exec(req.url) || [])[1];
    if (part === undefined) return body.length;
    if (uploadId !== undefined) {
      if (!partSizes.has(uploadId)) partSizes.set(uploadId, new Map());
      partSizes.get(uploadId).set(Number(part), body.length);
    }
    return null;
  }
  if (req.method === 'POST' && uploadId !== undefined) {
    const sizes = partSizes.get(uploadId);
    if (!sizes) return null;
    let total = 0;
    for (const [, n] of body.toString().matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)) {
      if (!sizes.has(Number(n))) return null;
      total += sizes.get(Number(n));
    }
    return total;
  }
  return null;
}

function headOf(req) {
  return new Promise((resolve) => {
    const headers = { ...req.headers };
    // s3rver would answer 304 to If-None-Match, and a range of the body.
    for (const h of ['content-length', 'if-none-match', 'range', 'content-md5']) delete headers[h];
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: 'HEAD',
      path: req.url.split('?')[0], headers, agent }, (upRes) => {
      upRes.resume();
      upRes.on('end', () => resolve(upRes));
    });
    up.on('error', () => resolve(null));
    up.end();
  });
}

async function whole(req, size) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const head = await headOf(req);
    if (head && head.statusCode === 200 &&
        Number(head.headers['content-length']) === size) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  process.stderr.write(`s3_proxy: ${req.method} ${req.url}: s3rver's object did not reach ${size} bytes in 10 s\n`);
}

function forward(req, body, res) {
  return new Promise((resolve) => {
    // Its client gone while the request waited (latency, its key's turn):
    // nobody to answer, so nothing to do.
    if (req.socket.destroyed) return resolve(499);
    const size = writtenSize(req, body);
    let answer = null;
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method,
      path: req.url, headers: req.headers, agent }, (upRes) => {
      answer = upRes;
      if (size !== null) {  // held until the object is whole
        const chunks = [];
        upRes.on('data', (c) => chunks.push(c));
        upRes.on('end', async () => {
          const text = Buffer.concat(chunks);
          if (upRes.statusCode === 200 && !text.includes('<Error>')) {
            await whole(req, size);
            if (req.method === 'POST') partSizes.delete(uploadIdOf(req));
          }
          if (!res.destroyed) {  // else a write whose client went
            res.writeHead(upRes.statusCode, upRes.headers);
            res.end(text);
          }
          resolve(upRes.statusCode);
        });
        return;
      }
      upRes.on('end', () => resolve(upRes.statusCode));
      if (res.destroyed) return upRes.resume();  // a write whose client went
      res.writeHead(upRes.statusCode, upRes.headers);
      if (req.method === 'GET') upRes.on('data', (c) => { injected.get_bytes += c.length; });
      upRes.on('error', () => {});  // the client went first; see below
      upRes.pipe(res);
    });
    // A client gone before the end (killed, timed out) would leave s3rver's
    // answer paused and this request unresolved, holding its key's turn
    // (withKeyLock) for good. A read ends upstream as the client did. A
    // write came in whole (its body is read before it is forwarded), and S3
    // carries out a request it has whole whether or not the client waits
    // for the answer; ending it upstream left s3rver's object truncated in
    // place (the soak test read a 0-byte commit object after a writer was
    // killed). So it goes on, its answer drained, and keeps its key's turn
    // until it is done.
    res.on('close', () => {
      if (answer !== null && answer.complete) return;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        if (answer !== null) answer.resume();
        return;
      }
      up.destroy();
      resolve(499);
    });
    up.on('error', (e) => {
      if (!res.headersSent) fail(res, 502, 'BadGateway', e.message);
      resolve(502);
    });
    up.end(body);
  });
}

const keyLocks = new Map();  // key -> promise of the running conditional put
async function withKeyLock(key, fn) {
  while (keyLocks.has(key)) await keyLocks.get(key);
  const done = fn();
  keyLocks.set(key, done);
  try { return await done; } finally { keyLocks.delete(key); }
}

// Stands in for a response: takes the answer and, instead of sending it,
// closes the connection.
function lostAnswer(socket) {
  const sink = new Writable({ write(chunk, encoding, done) { done(); } });
  sink.writeHead = () => sink;
  sink.on('finish', () => socket.destroy());
  return sink;
}

const proxy = http.createServer((req, res) => serve(req, res, false));
const faulty = http.createServer((req, res) => serve(req, res, true));

function serve(req, res, withFaults) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    if (req.url === '/__shoal_faults') {
      if (req.method === 'PUT') faults = parseSpec(body.toString());
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(injected));
    }
    ++injected.requests;
    if (req.method === 'GET') ++injected.gets;
    if (withFaults) {
      if (faults.latency) await new Promise((r) => setTimeout(r, faults.latency));
      const roll = Math.random();
      if (roll < (faults['503'] || 0)) {
        ++injected.slowdown;
        return fail(res, 503, 'SlowDown', 'Please reduce your request rate.');
      }
      if (roll < (faults['503'] || 0) + (faults.reset || 0)) {
        ++injected.reset;
        return req.socket.destroy();
      }
      const completion = req.method === 'POST' && /[?&]uploadId=/.test(req.url);
      if (roll < (faults['503'] || 0) + (faults.reset || 0) + (faults.lost || 0) ||
          (completion && Math.random() < (faults.lost_completion || 0))) {
        ++injected.lost;
        if (completion) ++injected.lost_completions;
        res = lostAnswer(req.socket);
      }
    }
    const auth = req.headers.authorization || '';
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(auth);
    if (!m) return fail(res, 403, 'AccessDenied', 'no SigV4 Authorization header');
    const [, id, scope, signed, signature] = m;
    if (id !== accessKey) return fail(res, 403, 'InvalidAccessKeyId', 'unknown access key');
    const claimed = req.headers['x-amz-content-sha256'];
    if (claimed !== 'UNSIGNED-PAYLOAD' && claimed !== sha256(body)) {
      return fail(res, 400, 'XAmzContentSHA256Mismatch', 'the body does not match its hash');
    }
    const want = expectedSignature(req, signed.split(';'), scope, req.headers['x-amz-date']);
    if (want !== signature) {
      return fail(res, 403, 'SignatureDoesNotMatch', 'the signature does not match');
    }
    const key = req.url.split('?')[0];
    const object = key.split('/').length > 2;  // /bucket/key, not /bucket
    if (req.method === 'PUT' && /[?&]partNumber=/.test(req.url)) ++injected.parts;
    if (req.method === 'PUT' && req.headers['if-none-match'] === '*') {
      await withKeyLock(key, async () => {
        const head = await headOf(req);
        if (head && head.statusCode === 200) {
          ++injected.conflicts;
          fail(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        } else {
          await forward(req, body, res);
        }
      });
      return;
    }
    if (object) {
      // s3rver writes an object in place, so a read racing an overwrite can
      // see a torn object; S3 replaces objects whole. The operations on one
      // key take turns here.
      await withKeyLock(key, () => handle(req, body, res));
      return;
    }
    forward(req, body, res);
  });
}

// A request on one object: S3's answers where s3rver's differ, else s3rver's.
async function handle(req, body, res) {
    if (req.method === 'GET' && req.headers.range) {
      // s3rver never answers a range of an empty object (the request
      // hangs), nor says 416 for one past the end: S3's answer is given here.
      const head = await headOf(req);
      const start = Number((/^bytes=(\d+)-/.exec(req.headers.range) || [])[1]);
      if (head && head.statusCode === 200 &&
          start >= Number(head.headers['content-length'])) {
        return fail(res, 416, 'InvalidRange', 'The requested range is not satisfiable');
      }
    }
    await forward(req, body, res);
}

function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => { socket.end(); resolve(true); });
    socket.on('error', () => resolve(false));
  });
}

(async () => {
  upstreamPort = await freePort();
  // Not silent (-s): Koa then prints the stack of every error s3rver turns
  // into a 500 InternalError on stderr (the test's log); its request log
  // goes to stdout, dropped.
  // s3rver makes a LIST's continuation token with DES, which OpenSSL 3 has
  // only in its legacy provider: without it every LIST longer than a page
  // is a 500.
  const env = { ...process.env };
  env.NODE_OPTIONS = `${env.NODE_OPTIONS || ''} --openssl-legacy-provider`.trim();
  const server = child.spawn(s3rver, ['-d', dataDir, '-a', '127.0.0.1', '-p',
    String(upstreamPort), '--configure-bucket', bucket], { stdio: ['ignore', 'ignore', 'inherit'], env });
  const stop = () => { server.kill('SIGTERM'); process.exit(0); };
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.on('SIGTERM', stop);
  process.stdin.resume();
  server.on('exit', () => process.exit(1));
  const deadline = Date.now() + 20000;
  while (!(await accepts(upstreamPort))) {
    if (Date.now() > deadline) stop();
    await new Promise((r) => setTimeout(r, 50));
  }
  if (faultPort) faulty.listen(Number(faultPort), '127.0.0.1');
  proxy.listen(Number(listenPort), '127.0.0.1');
})();
