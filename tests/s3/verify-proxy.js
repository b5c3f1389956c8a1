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
// usage: verify-proxy.js LISTEN_PORT UPSTREAM_PORT ACCESS_KEY SECRET_KEY [REGION]
'use strict';

const http = require('http');
const crypto = require('crypto');

const [listenPort, upstreamPort, accessKey, secretKey, region = 'us-east-1'] =
  process.argv.slice(2);
if (!listenPort || !upstreamPort || !accessKey || !secretKey) {
  console.error('usage: verify-proxy.js LISTEN_PORT UPSTREAM_PORT ACCESS_KEY SECRET_KEY [REGION]');
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
  if (scope[2] !== region || scope[3] !== 's3' || scope[4] !== 'aws4_request' ||
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

const server = http.createServer((req, res) => {
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
  const up = http.request({
    host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers,
  }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => s3error(res, 503, 'ServiceUnavailable', 'upstream down'));
  req.pipe(up);
});
server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`verify-proxy listening on 127.0.0.1:${listenPort} -> ${upstreamPort}`);
});
