#!/bin/sh
# systemd_units_test.sh: the units of init/systemd, rendered as make
# install renders them but pointing at this build's programs, pass
# systemd-analyze verify without a word (an unknown key, a bad value or a
# missing program is only a warning there, so any output fails the test);
# and scripts/nginx-conf.sh server, which kadr-nginx.service runs before
# each start, renders a configuration that passes nginx -t and takes its
# limits and storage root from kadr.conf. Skipped (77) without
# systemd-analyze.
set -u
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not found (Debian package systemd)"; exit 77; }
top=${abs_top_builddir:-$(pwd)}
src=${abs_top_srcdir:-$top}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kd-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/units" "$tmp/share"
ln -s "$src/scripts/nginx-conf.sh" "$tmp/share/"
for p in fcgi/kadr-api workers/kadr-worker workers/kadr-scheduler tools/kadrctl notify/kadr-notify; do
    [ -x "$top/$p" ] || { echo "not built: $p"; exit 1; }
    ln -s "$top/$p" "$tmp/bin/"
done
for f in "$src"/init/systemd/*.in; do
    sed -e "s|@bindir[@]|$tmp/bin|g" -e "s|@sysconfdir[@]|$tmp/etc|g" \
        -e "s|@pkgdatadir[@]|$tmp/share|g" "$f" \
        >"$tmp/units/$(basename "$f" .in)" || exit 1
done
cp "$src/init/systemd/kadr.target" "$tmp/units/"
if grep -n '@[a-z]*@' "$tmp"/units/*; then
    echo "a placeholder was left unfilled"
    exit 1
fi
# A template is verified through an instance.
mv "$tmp/units/kadr-worker@.service" "$tmp/units/kadr-worker@1.service"
cd "$tmp/units" || exit 1
out=$(systemd-analyze verify --man=no ./*.service ./kadr.target 2>&1)
rc=$?
printf '%s\n' "$out"
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify (status $rc)"
    exit 1
fi
echo "PASS: $(ls | wc -l) units verified"

# The server rendering, with a scratch prefix, ports and certificate
# (nginx -t loads the certificate, binds nothing).
cd "$tmp" || exit 1
mkdir -p tls storage/objects storage/tmp
printf 'storage_root = %s/storage\nupload_max_bytes = 2G\nbody_max_bytes = 65536\n' "$tmp" >kadr.conf
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout tls/key.pem -out tls/cert.pem >/dev/null 2>&1 || { echo "FAIL: openssl"; exit 1; }
if ! KN_USER_LINE='' KN_LOG_DIR=$tmp/logs KN_TLS_DIR=$tmp/tls KN_HTTP_PORT=18080 KN_HTTPS_PORT=18443 \
    KN_API_SOCK=$tmp/api.sock "$src/scripts/nginx-conf.sh" server --config "$tmp/kadr.conf" \
    --kadrctl "$top/tools/kadrctl" --prefix "$tmp/nginx"; then
    echo "FAIL: nginx-conf.sh server"
    exit 1
fi
for want in "client_max_body_size 65536;" "client_max_body_size 2147483648;" "$tmp/storage/objects/"; do
    grep -qF "$want" nginx/conf/kadr-site.conf || { echo "FAIL: kadr-site.conf lacks $want"; exit 1; }
done
echo "PASS: nginx-conf.sh server renders a configuration nginx -t accepts"

# A value that would add a directive to nginx's configuration is refused,
# and nothing is rendered from it.
printf 'storage_root = %s/storage; include /etc/passwd\n' "$tmp" >evil.conf
if KN_USER_LINE='' KN_LOG_DIR=$tmp/logs KN_TLS_DIR=$tmp/tls KN_API_SOCK=$tmp/api.sock \
    "$src/scripts/nginx-conf.sh" server --config "$tmp/evil.conf" --kadrctl "$top/tools/kadrctl" \
    --prefix "$tmp/evil" 2>evil.err; then
    echo "FAIL: nginx-conf.sh rendered a storage_root holding a directive"
    exit 1
fi
grep -q 'not a value' evil.err || { cat evil.err; echo "FAIL: no clear refusal"; exit 1; }
if [ -e "$tmp/evil/conf/kadr-site.conf" ]; then
    echo "FAIL: a configuration was written"
    exit 1
fi
echo "PASS: a storage_root holding a directive is refused"
