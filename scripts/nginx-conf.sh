#!/usr/bin/env bash
# nginx-conf.sh: renders kadr's nginx templates (nginx/*.in) for one
# installation. The one place that knows the templates' @...@ markers.
#
#   nginx-conf.sh render SRC DST
#       one template, every marker from its KN_* variable below (all must
#       be set; scripts/stack.sh renders the local stack's this way)
#   nginx-conf.sh server [--config FILE] [--prefix DIR] [--kadrctl PATH]
#       a server installation (doc/operations.md, init/systemd): renders
#       every template into DIR/conf (default /var/lib/kadr/nginx), copies
#       the plain files and the index page, and checks the result with
#       nginx -t. kadr-nginx.service runs it before each start, so that
#       nginx's body limits and storage paths follow kadr.conf
#       (default /etc/kadr/kadr.conf, read through kadrctl config).
#
# The markers and their variables (server defaults in brackets):
#   USER_LINE      KN_USER_LINE      nginx's "user" line      [user kadr kadr;]
#   NGINX_WORKERS  KN_NGINX_WORKERS  worker_processes         [auto]
#   NGINX_DIR      KN_NGINX_DIR      prefix: pid, temp, html  [--prefix]
#   LOG_DIR        KN_LOG_DIR        logs                     [/var/log/kadr]
#   TLS_DIR        KN_TLS_DIR        cert.pem and key.pem     [/etc/kadr/tls]
#   LISTEN_ADDR    KN_LISTEN_ADDR    address to listen on     [0.0.0.0]
#   HTTP_PORT      KN_HTTP_PORT      plain HTTP               [80]
#   HTTPS_PORT     KN_HTTPS_PORT     HTTPS                    [443]
#   API_SOCK       KN_API_SOCK       kadr-api's socket        [/run/kadr/api.sock]
#   STORAGE_ROOT   KN_STORAGE_ROOT   local object store       [kadr.conf's storage_root]
#   BODY_MAX       KN_BODY_MAX       /api/ body cap, bytes    [kadr.conf's body_max_bytes]
#   UPLOAD_MAX     KN_UPLOAD_MAX     upload cap, bytes        [kadr.conf's upload_max_bytes]
#   API_RATE       KN_API_RATE       requests per address     [200r/s]
#   API_BURST      KN_API_BURST      its burst                [400]
#   AUTH_RATE      KN_AUTH_RATE      /api/v1/auth/ rate       [5r/s]
#   AUTH_BURST     KN_AUTH_BURST     its burst                [20]
#   CONN_LIMIT     KN_CONN_LIMIT     connections per address  [100]
#   RATE_EXEMPT    KN_RATE_EXEMPT    geo lines of addresses the limits skip
#                                    [127.0.0.1 1; ::1 1; ]
# Each value must have its marker's shape (paths absolute, without white
# space or nginx syntax; numbers; rates like 200r/s), else nothing renders.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
markers=(USER_LINE NGINX_WORKERS NGINX_DIR LOG_DIR TLS_DIR LISTEN_ADDR HTTP_PORT HTTPS_PORT
    API_SOCK STORAGE_ROOT BODY_MAX UPLOAD_MAX API_RATE API_BURST AUTH_RATE AUTH_BURST
    CONN_LIMIT RATE_EXEMPT)

die() { echo "nginx-conf.sh: $*" >&2; exit 1; }

# A value goes into sed's replacement and then into nginx's syntax: | & \
# would change the first, ; { } quotes or white space the second (a path
# like "/x; include /y" would add a directive). Each marker takes only
# the shape it needs; the two free-form ones (whole directives) still
# cannot hold braces, quotes or sed's characters.
check_value() {
    local m=$1 v=$2 re
    case $m in
    NGINX_DIR | LOG_DIR | TLS_DIR | API_SOCK | STORAGE_ROOT) re='^/[A-Za-z0-9._/+@-]*$' ;;
    NGINX_WORKERS) re='^(auto|[1-9][0-9]*)$' ;;
    HTTP_PORT | HTTPS_PORT | BODY_MAX | UPLOAD_MAX | API_BURST | AUTH_BURST | CONN_LIMIT)
        re='^[0-9]+$' ;;
    API_RATE | AUTH_RATE) re='^[1-9][0-9]*r/[sm]$' ;;
    LISTEN_ADDR) re='^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.:*-]+)$' ;;
    *) re='^[^][|&\\{}"'"'"'$`]*$' ;;
    esac
    [[ $v =~ $re && $v != *$'\n'* ]] || die "KN_$m = \"$v\" is not a value nginx's configuration can take here"
}

render() {
    local src=$1 dst=$2 m v args=()
    [[ -f $src ]] || die "no template $src"
    for m in "${markers[@]}"; do
        v=KN_$m
        [[ -n ${!v+set} ]] || die "KN_$m is not set"
        check_value "$m" "${!v}"
        args+=(-e "s|@$m@|${!v}|g")
    done
    sed "${args[@]}" "$src" >"$dst.tmp"
    if grep -n '@[A-Z_][A-Z_]*@' "$dst.tmp" >&2; then
        rm -f "$dst.tmp"
        die "$src has a marker this script does not know"
    fi
    mv -f "$dst.tmp" "$dst"
}

# The templates: next to this script when installed (share/kadr/nginx),
# nginx/ at the top of the source tree otherwise.
templates_dir() {
    if [[ -d $here/nginx ]]; then
        echo "$here/nginx"
    elif [[ -d $here/../nginx ]]; then
        (cd "$here/../nginx" && pwd)
    else
        die "cannot find the nginx templates"
    fi
}

# A setting as the kadr programs see it (file, environment, defaults).
setting() {
    sed -n "s/^$1 = //p" <<<"$dump" | head -n 1
}

server() {
    local config=/etc/kadr/kadr.conf prefix=/var/lib/kadr/nginx kadrctl=kadrctl tdir f
    while [[ $# -gt 0 ]]; do
        case $1 in
        --config) config=${2:?}; shift 2 ;;
        --prefix) prefix=${2:?}; shift 2 ;;
        --kadrctl) kadrctl=${2:?}; shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    dump=$("$kadrctl" --config "$config" config) || die "kadrctl config failed for $config"
    : "${KN_USER_LINE=user kadr kadr;}" "${KN_NGINX_WORKERS:=auto}" "${KN_NGINX_DIR:=$prefix}"
    : "${KN_LOG_DIR:=/var/log/kadr}" "${KN_TLS_DIR:=/etc/kadr/tls}" "${KN_LISTEN_ADDR:=0.0.0.0}"
    : "${KN_HTTP_PORT:=80}" "${KN_HTTPS_PORT:=443}" "${KN_API_SOCK:=/run/kadr/api.sock}"
    : "${KN_STORAGE_ROOT:=$(setting storage_root)}" "${KN_BODY_MAX:=$(setting body_max_bytes)}"
    : "${KN_UPLOAD_MAX:=$(setting upload_max_bytes)}" "${KN_API_RATE:=200r/s}"
    : "${KN_API_BURST:=400}" "${KN_AUTH_RATE:=5r/s}" "${KN_AUTH_BURST:=20}"
    : "${KN_CONN_LIMIT:=100}" "${KN_RATE_EXEMPT=127.0.0.1 1; ::1 1; }"
    [[ -n $KN_STORAGE_ROOT && $KN_BODY_MAX =~ ^[0-9]+$ && $KN_UPLOAD_MAX =~ ^[0-9]+$ ]] ||
        die "kadrctl config gave no storage_root, body_max_bytes or upload_max_bytes"
    tdir=$(templates_dir)
    mkdir -p "$KN_NGINX_DIR/conf" "$KN_NGINX_DIR/html" "$KN_NGINX_DIR/tmp" "$KN_LOG_DIR"
    for f in "$tdir"/*.in; do render "$f" "$KN_NGINX_DIR/conf/$(basename "$f" .in)"; done
    for f in "$tdir"/*.conf; do cp "$f" "$KN_NGINX_DIR/conf/"; done
    cp "$tdir/index.html" "$KN_NGINX_DIR/html/index.html"
    nginx -t -q -p "$KN_NGINX_DIR/" -c conf/kadr.conf -e "$KN_LOG_DIR/nginx-error.log" ||
        die "the rendered configuration in $KN_NGINX_DIR/conf does not pass nginx -t"
    echo "nginx-conf.sh: rendered $KN_NGINX_DIR/conf/kadr.conf"
}

case ${1:-} in
render) [[ $# -eq 3 ]] || die "usage: nginx-conf.sh render SRC DST"; render "$2" "$3" ;;
server) shift; server "$@" ;;
-h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
*) die "usage: nginx-conf.sh render SRC DST | server [--config FILE] [--prefix DIR]" ;;
esac
