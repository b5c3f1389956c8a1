#!/usr/bin/env node
// verify-proxy.js: a SigV4-verifying front for s3rver, for kadr's tests.
//
// s3rver checks only V2 signatures and lets anonymous requests through;
// its V4 check is a stub that accepts anything. This proxy sits in front
// and refuses, as S3 does, every request that is not signed with the test
// key (header auth or presigned query auth), whose signature does not
// match, or whose presigned URL has expired, then passes the rest to
// s3rver unchanged. It is an independent implementation of the signature
// (Node's crypto, not kadr's C signer), so a test passing through it shows
// that kadr signs as S3 verifies.
//
// s3rver also lacks three multipart calls S3 has: it answers ListParts and
// AbortMultipartUpload with 405 and completes with any ETags. Given the
// s3rver data directory, the proxy does these itself on s3rver's layout
// (<data>/<bucket>/._S3rver_uploads/<uploadId>/{key,N,N.md5}), as S3 does:
// list the parts, abort (the parts are removed), and refuse a completion
// naming a part that was not uploaded, a wrong ETag, parts out of order or
// a part under 5 MiB that is not the last.
//
// Virtual-host style: a request to <bucket>.localhost[:port] is verified
// with the Host it came with, then passed on in path style (s3rver runs
// with --no-vhost-buckets).
//
// Regions: REGIONS is a comma-separated list (default us-east-1); a
// request signed for another region is refused, as S3 refuses a request
// signed for the wrong one.
//
// Faults, for the tests of retries, outages and slow transfers, set on
// the admin path /__faults (not signed; the proxy listens on loopback):
//   PUT /__faults?status=503&code=SlowDown&count=3[&methods=GET,PUT][&match=S][&pass=1]
//       the next 3 genuine requests (of those methods, whose URL holds S)
//       get that error; with pass=1 the request is carried out first and
//       only its answer is replaced (an answer lost on the way back)
//   PUT /__faults?throttle=BYTES_PER_S[&methods=PUT]
//       request bodies (uploads) pass at most that fast
//   GET /__faults      {"injected": n, "throttled": n, "requests": n}
//   DELETE /__faults   back to normal, counters kept
//
// usage: verify-proxy.js LISTEN_PORT UPSTREAM_PORT ACCESS_KEY SECRET_KEY DATA_DIR [REGIONS]
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const [listenPort, upstreamPort, accessKey, secretKey, dataDir, regionList = 'us-east-1'] =
  process.argv.slice(2);
const regions = regionList.split(',');
const { Transform } = require('stream');
if (!listenPort || !upstreamPort || !accessKey || !secretKey || !dataDir) {
  console.error('usage: verify-proxy.js LISTEN_PORT UPSTREAM_PORT ACCESS_KEY SECRET_KEY DATA_DIR [REGION]');
  process.exit(2);
}

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

// RFC 3986 unreserved kept, every other byte %XX upper case (S3's rule).
function enc(s, keepSlash) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function dec(s) {
  return decodeURIComponent(s.replace(/\+/g, '%2B'));
}

function s3error(res, status, code, message) {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': body.length });
  res.end(body);
}

function amzTime(d) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(d || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

// Returns null when the request is genuine, or [status, code, message].
function verify(req) {
  const raw = req.url;
  const qi = raw.indexOf('?');
  const rawPath = qi < 0 ? raw : raw.slice(0, qi);
  const rawQuery = qi < 0 ? '' : raw.slice(qi + 1);
  const params = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = dec(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : dec(part.slice(eq + 1));
    params.push([name, value]);
  }
  const q = Object.fromEntries(params);
  let credential, signedHeaders, signature, date, payloadHash, presigned = false;

  const auth = req.headers.authorization;
  if (auth !== undefined && q['X-Amz-Algorithm'] !== undefined)
    return [400, 'InvalidArgument', 'Only one auth mechanism allowed'];
  if (auth !== undefined) {
    const m = /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/
      .exec(auth);
    if (!m) return [400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed'];
    [, credential, signedHeaders, signature] = m;
    date = req.headers['x-amz-date'];
    payloadHash = req.headers['x-amz-content-sha256'];
    if (!payloadHash) return [400, 'InvalidRequest', 'Missing x-amz-content-sha256'];
    if (Math.abs(Date.now() - amzTime(date)) > 15 * 60 * 1000)
      return [403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'];
  } else if (q['X-Amz-Algorithm'] !== undefined) {
    if (q['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256')
      return [400, 'AuthorizationQueryParametersError', 'Unsupported algorithm'];
    presigned = true;
    credential = q['X-Amz-Credential'];
    signedHeaders = q['X-Amz-SignedHeaders'];
    signature = q['X-Amz-Signature'];
    date = q['X-Amz-Date'];
    payloadHash = 'UNSIGNED-PAYLOAD';
    const expires = Number(q['X-Amz-Expires']);
    if (!credential || !signedHeaders || !signature || !Number.isInteger(expires) ||
        expires < 1 || expires > 604800 || isNaN(amzTime(date)))
      return [400, 'AuthorizationQueryParametersError', 'Malformed presigned URL'];
    if (Date.now() > amzTime(date) + expires * 1000)
      return [403, 'AccessDenied', 'Request has expired'];
  } else {
    return [403, 'AccessDenied', 'Anonymous access is refused by the test server'];
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[0] !== accessKey)
    return [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  if (!regions.includes(scope[2]) || scope[3] !== 's3' || scope[4] !== 'aws4_request' ||
      scope[1] !== date.slice(0, 8))
    return [400, 'AuthorizationHeaderMalformed', 'The credential scope is wrong'];
  const names = signedHeaders.split(';');
  if (!names.includes('host'))
    return [400, 'AuthorizationHeaderMalformed', 'host must be signed'];
  const canonicalHeaders = names.map((n) => {
    const v = req.headers[n];
    if (v === undefined) return null;
    return n + ':' + String(v).trim().replace(/\s+/g, ' ') + '\n';
  });
  if (canonicalHeaders.includes(null))
    return [403, 'SignatureDoesNotMatch', 'A signed header is missing'];
  const canonicalQuery = params
    .filter(([n]) => !(presigned && n === 'X-Amz-Signature'))
    .map(([n, v]) => [enc(n, false), enc(v, false)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([n, v]) => n + '=' + v)
    .join('&');
  // S3: the path is not normalised; decoded once, encoded once
  const canonicalPath = enc(dec(rawPath), true);
  const creq = [req.method, canonicalPath, canonicalQuery, canonicalHeaders.join(''),
    signedHeaders, payloadHash].join('\n');
  const sts = ['AWS4-HMAC-SHA256', date, scope.slice(1).join('/'), sha256(creq)].join('\n');
  let k = hmac('AWS4' + secretKey, scope[1]);
  k = hmac(k, scope[2]);
  k = hmac(k, scope[3]);
  k = hmac(k, 'aws4_request');
  const want = hmac(k, sts);
  const got = Buffer.from(signature, 'hex');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want))
    return [403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  return null;
}

function xml(res, status, body) {
  const b = '<?xml version="1.0" encoding="UTF-8"?>\n' + body;
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(b) });
  res.end(b);
}

// The upload directory of a multipart request, or null when the request is
// not one; throws [status, code, message] for a bad or unknown upload.
function uploadOf(req) {
  const u = new URL(req.url, 'http://x');
  if (!u.searchParams.has('uploadId')) return null;
  const m = /^\/([^/]+)\/(.+)$/.exec(u.pathname);
  const id = u.searchParams.get('uploadId');
  if (!m || !/^[0-9a-f]{1,64}$/.test(id))
    throw [404, 'NoSuchUpload', 'The specified upload does not exist.'];
  const dir = path.join(dataDir, m[1], '._S3rver_uploads', id);
  let key;
  try {
    key = fs.readFileSync(path.join(dir, 'key'), 'utf8');
  } catch (e) {
    throw [404, 'NoSuchUpload', 'The specified upload does not exist.'];
  }
  if (key !== decodeURIComponent(m[2]))
    throw [404, 'NoSuchUpload', 'The specified upload does not exist.'];
  return { dir, key, id, bucket: m[1], partNumber: u.searchParams.get('partNumber') };
}

function parts(dir) {
  return fs.readdirSync(dir).filter((f) => /^[0-9]+$/.test(f)).map(Number).sort((a, b) => a - b)
    .map((n) => ({
      n,
      size: fs.statSync(path.join(dir, String(n))).size,
      md5: fs.readFileSync(path.join(dir, `${n}.md5`), 'utf8').trim(),
    }));
}

// Returns true when the request was answered here.
function multipart(req, res, body) {
  let up;
  try {
    up = uploadOf(req);
  } catch (e) {
    if (req.method === 'PUT' || req.method === 'GET' || req.method === 'DELETE' || req.method === 'POST') {
      s3error(res, ...e);
      return true;
    }
    throw e;
  }
  if (up === null) return false;
  if (req.method === 'DELETE') {
    fs.rmSync(up.dir, { recursive: true, force: true });
    res.writeHead(204);
    res.end();
    return true;
  }
  if (req.method === 'GET') {
    const list = parts(up.dir).map((p) => `<Part><PartNumber>${p.n}</PartNumber>` +
      `<ETag>"${p.md5}"</ETag><Size>${p.size}</Size></Part>`).join('');
    xml(res, 200, `<ListPartsResult><Bucket>${up.bucket}</Bucket><Key>${up.key}</Key>` +
      `<UploadId>${up.id}</UploadId><IsTruncated>false</IsTruncated>${list}</ListPartsResult>`);
    return true;
  }
  if (req.method === 'POST') {
    const have = new Map(parts(up.dir).map((p) => [p.n, p]));
    const named = [...body.toString('utf8').matchAll(
      /<Part>\s*<PartNumber>(\d+)<\/PartNumber>\s*<ETag>([^<]*)<\/ETag>\s*<\/Part>/g)]
      .map((m) => ({ n: Number(m[1]), etag: m[2].replace(/"|&quot;/g, '') }));
    if (named.length === 0) {
      s3error(res, 400, 'MalformedXML', 'The XML you provided was not well-formed.');
      return true;
    }
    for (let i = 0; i < named.length; i++) {
      const p = have.get(named[i].n);
      if (i > 0 && named[i].n <= named[i - 1].n) {
        s3error(res, 400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
        return true;
      }
      if (!p || p.md5 !== named[i].etag) {
        s3error(res, 400, 'InvalidPart', 'One or more of the specified parts could not be found.');
        return true;
      }
      if (i < named.length - 1 && p.size < 5 * 1024 * 1024) {
        s3error(res, 400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size.');
        return true;
      }
    }
  }
  return false; // a part upload, or a valid completion: s3rver does it
}

// --- faults --------------------------------------------------------------
const faults = { fail: null, throttle: 0, throttleMethods: null, injected: 0, throttled: 0, requests: 0 };

function admin(req, res) {
  const u = new URL(req.url, 'http://x');
  const q = u.searchParams;
  if (req.method === 'PUT') {
    const methods = q.has('methods') ? q.get('methods').split(',') : null;
    if (q.has('status')) {
      faults.fail = {
        status: Number(q.get('status')), code: q.get('code') || 'InternalError',
        count: Number(q.get('count') || '1'), methods, match: q.get('match'),
        pass: q.get('pass') === '1',
      };
    }
    if (q.has('throttle')) {
      faults.throttle = Number(q.get('throttle'));
      faults.throttleMethods = methods;
    }
  } else if (req.method === 'DELETE') {
    faults.fail = null;
    faults.throttle = 0;
  }
  const body = JSON.stringify({ injected: faults.injected, throttled: faults.throttled,
    requests: faults.requests });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
  req.resume();
}

// A request body passed on at most faults.throttle bytes a second.
function throttled() {
  return new Transform({
    transform(chunk, enc, done) {
      const rate = faults.throttle;
      if (rate <= 0) { done(null, chunk); return; }
      setTimeout(() => done(null, chunk), Math.ceil((chunk.length * 1000) / rate));
    },
  });
}

function forward(req, res, body) {
  const up = http.request({
    host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers,
  }, (ur) => {
    if (req.failAfter) {
      // done upstream; the answer is "lost" and replaced by the error
      ur.resume();
      ur.on('end', () => s3error(res, req.failAfter.status, req.failAfter.code,
        'injected by the test server after the request was carried out'));
      return;
    }
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => s3error(res, 503, 'ServiceUnavailable', 'upstream down'));
  if (body !== null) {
    up.end(body);
  } else if (faults.throttle > 0 &&
             (faults.throttleMethods === null || faults.throttleMethods.includes(req.method))) {
    faults.throttled++;
    req.pipe(throttled()).pipe(up);
  } else {
    req.pipe(up);
  }
}

// <bucket>.localhost: the bucket moves into the path for s3rver.
function vhostToPath(req) {
  const host = String(req.headers.host || '').replace(/:\d+$/, '');
  const m = /^([a-z0-9.-]+)\.localhost$/.exec(host);
  if (m) req.url = '/' + m[1] + req.url;
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/__faults')) {
    admin(req, res);
    return;
  }
  let refusal;
  try {
    refusal = verify(req);
  } catch (e) {
    refusal = [400, 'InvalidRequest', 'Malformed request'];
  }
  if (refusal) {
    if (process.env.VERIFY_PROXY_LOG) console.error(`${req.method} ${req.url.split('?')[0]}: ${refusal[1]}`);
    req.resume();
    s3error(res, ...refusal);
    return;
  }
  faults.requests++;
  const f = faults.fail;
  if (f !== null && f.count > 0 && (f.methods === null || f.methods.includes(req.method)) &&
      (!f.match || req.url.includes(f.match))) {
    f.count--;
    faults.injected++;
    if (f.pass) {
      req.failAfter = f;
    } else {
      req.resume();
      s3error(res, f.status, f.code, 'injected by the test server');
      return;
    }
  }
  vhostToPath(req);
  // a completion is small: read it whole to check its parts
  if (req.method === 'POST' && /[?&]uploadId=/.test(req.url)) {
    const chunks = [];
    let len = 0;
    req.on('data', (c) => {
      len += c.length;
      if (len <= 4 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        if (!multipart(req, res, body)) forward(req, res, body);
      } catch (e) {
        s3error(res, 500, 'InternalError', String(e));
      }
    });
    return;
  }
  try {
    if (req.method !== 'PUT' && multipart(req, res, null)) {
      req.resume();
      return;
    }
    if (req.method === 'PUT' && /[?&]uploadId=/.test(req.url)) uploadOf(req); // 404 when unknown
  } catch (e) {
    req.resume();
    if (Array.isArray(e)) s3error(res, ...e);
    else s3error(res, 500, 'InternalError', String(e));
    return;
  }
  forward(req, res, null);
});
server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`verify-proxy listening on 127.0.0.1:${listenPort} -> ${upstreamPort}`);
});
