#!/usr/bin/env bash
# stack.sh: the local kadr stack in one directory.
#
#   stack.sh start  [--dir DIR] [--port-base N] [--api-procs N] [--workers N] [--infra-only]
#   stack.sh stop   [--dir DIR]
#   stack.sh status [--dir DIR]
#   stack.sh env    [--dir DIR]      print KADR_CONFIG=..., KADR_URL=... lines
#
# Everything lives under DIR (default ./run): a private PostgreSQL cluster,
# Redis, the FastCGI API under spawn-fcgi, the worker(s), the webhook
# notifier, nginx, the signing
# secret, the TLS certificate, the stored objects and every log. Ports come
# from the base (default 8080): http = base, https = base+1, and base+2 and
# base+3 name the PostgreSQL and Redis sockets (neither listens on TCP).
#
# start is idempotent: it reuses what exists (data, secret, certificate,
# user) and starts only what is not running. stop stops what this DIR's
# pidfiles name, after checking each process really belongs to DIR; it never
# touches anything else.
#
# Run as root, every daemon runs as the unprivileged user "kadr" (created if
# missing; KADR_STACK_USER picks another); otherwise as the invoking user.
# The kadr binaries come from the build tree (in-tree build at the top of the
# repository, or KADR_BIN_DIR: a build directory or a directory holding the
# three programs) and are copied into DIR/bin, so the run user never needs
# access to the source tree; start restarts the API or the workers when
# their program changed since it was copied (a rebuild).
#
# KADR_* variables in the environment of `start` reach the daemons and
# override kadr.conf (see `kadrctl config help`).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=stack.sh

die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

# ---------------------------------------------------------------- options
cmd=${1:-}
[[ -n $cmd ]] || usage
shift
dir=./run
opt_port_base=
opt_api_procs=
opt_workers=
infra_only=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --dir=*) dir=${1#*=}; shift ;;
    --port-base) opt_port_base=${2:?--port-base needs a value}; shift 2 ;;
    --port-base=*) opt_port_base=${1#*=}; shift ;;
    --api-procs) opt_api_procs=${2:?}; shift 2 ;;
    --workers) opt_workers=${2:?}; shift 2 ;;
    --infra-only) infra_only=1; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case $cmd in start|stop|status|env) ;; -h|--help|help) usage ;; *) die "unknown command: $cmd" ;; esac

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- the run user
if [[ $EUID -eq 0 ]]; then
    run_user=${KADR_STACK_USER:-kadr}
else
    run_user=$(id -un)
fi

ensure_user() {
    [[ $EUID -eq 0 ]] || return 0
    id -u "$run_user" >/dev/null 2>&1 && return 0
    [[ $run_user == root ]] && return 0
    say "creating system user $run_user"
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin "$run_user"
}

# The command prefix that runs a program as the run user (empty when that
# is who we are already).
user_prefix() {
    if [[ $EUID -eq 0 && $run_user != root ]]; then
        as_user_cmd=(setpriv --reuid="$run_user" --regid="$run_group" --init-groups
            -- env HOME="$run_dir" USER="$run_user" LOGNAME="$run_user")
    else
        as_user_cmd=(env HOME="$run_dir")
    fi
}

# Runs a command as the run user, from DIR (the caller's directory may be
# closed to that user, and PostgreSQL refuses to start without a usable one).
as_user() {
    (cd "$run_dir" && exec "${as_user_cmd[@]}" "$@")
}

# ---------------------------------------------------------------- the directory
# DIR must be reachable by the run user. When root asks for a directory the
# run user cannot reach (a clone under /root), the state goes to
# /var/lib/kadr/stacks/ and DIR becomes a symlink to it.
resolve_dir() {
    local want=$1 create=$2 abs parent real
    if [[ -e $want || -L $want ]]; then
        run_dir=$(realpath "$want")
    elif [[ $create -eq 1 ]]; then
        abs=$(realpath -m "$want")
        parent=$(dirname "$abs")
        mkdir -p "$parent"
        if [[ $EUID -eq 0 && $run_user != root ]] &&
            ! setpriv --reuid="$run_user" --regid="$run_group" --init-groups -- test -x "$parent" 2>/dev/null; then
            real=/var/lib/kadr/stacks/$(basename "$abs")-$(printf '%s' "$abs" | sha256sum | cut -c1-12)
            mkdir -p "$real"
            ln -s "$real" "$abs"
            say "$run_user cannot reach $parent; the stack's files live in $real ($want links to it)"
            run_dir=$real
        else
            mkdir -p "$abs"
            run_dir=$abs
        fi
    else
        die "no stack in $want"
    fi
    # The paths end up in nginx's and PostgreSQL's configuration and in
    # libpq conninfo strings: keep them plain.
    [[ $run_dir =~ ^/[A-Za-z0-9/._+-]+$ ]] ||
        die "the directory $run_dir has characters other than letters, digits and /._+-"
    # A unix socket path holds at most 107 bytes.
    (( ${#run_dir} <= 80 )) || die "the directory $run_dir is too long for unix sockets (80 bytes at most)"
}

set_paths() {
    conf=$run_dir/kadr.conf
    state=$run_dir/stack.env
    bin_dir=$run_dir/bin
    log_dir=$run_dir/logs
    pg_dir=$run_dir/pg
    pg_data=$pg_dir/data
    redis_dir=$run_dir/redis
    redis_sock=$redis_dir/redis.sock
    redis_pid=$redis_dir/redis.pid
    nginx_dir=$run_dir/nginx
    nginx_pid=$nginx_dir/nginx.pid
    tls_dir=$run_dir/tls
    secret_dir=$run_dir/secrets
    storage=$run_dir/storage
    api_sock=$run_dir/api.sock
    api_pid=$run_dir/api.pid
}

# stack.env remembers the choices of the first start, so later commands
# without options act on the same ports.
load_state() {
    port_base=8080 api_procs=2 workers=1
    if [[ -f $state ]]; then
        local k v
        while IFS='=' read -r k v; do
            case $k in
            PORT_BASE) is_uint "$v" && port_base=$v ;;
            API_PROCS) is_uint "$v" && api_procs=$v ;;
            WORKERS) is_uint "$v" && workers=$v ;;
            esac
        done <"$state"
    fi
}

derive_ports() {
    http_port=$port_base
    https_port=$((port_base + 1))
    pg_port=$((port_base + 2))
    redis_port=$((port_base + 3))
    (( port_base >= 1024 && port_base <= 65532 )) || die "--port-base must be within 1024..65532"
}

# ---------------------------------------------------------------- processes
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# Whether pid is a live process of this stack: its command line names DIR
# or it runs from inside DIR. Guards every signal against recycled pids.
ours() {
    local pid=$1 cmdline cwd
    alive "$pid" || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$run_dir/"* ]] && return 0
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
    [[ $cwd == "$run_dir" || $cwd == "$run_dir/"* ]]
}

pids_in() {
    [[ -f $1 ]] || return 0
    local p
    # spawn-fcgi ends its pidfile without a newline: read the last line too.
    while read -r p || [[ -n $p ]]; do
        is_uint "$p" && printf '%s\n' "$p"
    done <"$1"
}

# Prints the live pids of this stack in pidfile $1.
live_pids() {
    local p
    for p in $(pids_in "$1"); do
        ours "$p" && printf '%s\n' "$p"
    done
    return 0
}

# Polls until cond succeeds or timeout_s passes.
wait_for() {
    local timeout_s=$1; shift
    local deadline=$((SECONDS + timeout_s))
    until "$@"; do
        (( SECONDS < deadline )) || return 1
        sleep 0.1
    done
}

none_alive() {
    local p
    for p in "$@"; do alive "$p" && return 1; done
    return 0
}

# Sends sig to the pids, waits for them to go, then kills what is left.
stop_pids() {
    local what=$1 sig=$2 timeout_s=$3; shift 3
    [[ $# -gt 0 ]] || return 0
    say "stopping $what (pid $*)"
    kill "-$sig" "$@" 2>/dev/null || true
    if ! wait_for "$timeout_s" none_alive "$@"; then
        say "$what did not stop within ${timeout_s}s; killing it"
        kill -KILL "$@" 2>/dev/null || true
        wait_for 5 none_alive "$@" || die "$what (pid $*) does not die"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- tools
pg_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    done
    d=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
    [[ -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    die "PostgreSQL server binaries not found (apt-get install postgresql-15)"
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found (install $2; scripts/deps.sh lists every package)"
}

# Where the kadr programs are: KADR_BIN_DIR (a build directory or a flat
# directory), else the in-tree build.
find_program() {
    local name=$1 sub=$2 d
    for d in ${KADR_BIN_DIR:+"$KADR_BIN_DIR"} "$top"; do
        [[ -x $d/$sub/$name ]] && { echo "$d/$sub/$name"; return 0; }
        [[ -x $d/$name ]] && { echo "$d/$name"; return 0; }
    done
    return 1
}

# Copies a program into DIR/bin when it changed; a rename, so a running
# process keeps its old file.
# Names each program that changed in $changed_programs.
install_program() {
    local src=$1 dst=$bin_dir/$(basename "$1")
    if [[ -x $dst ]] && cmp -s "$src" "$dst"; then
        return 0
    fi
    cp "$src" "$dst.new"
    chmod 0755 "$dst.new"
    mv -f "$dst.new" "$dst"
    changed_programs="$changed_programs $(basename "$1")"
}
changed_programs=""
program_changed() { [[ " $changed_programs " == *" $1 "* ]]; }

kadrctl() { "$bin_dir/kadrctl" --config "$conf" "$@"; }

# ---------------------------------------------------------------- set-up pieces
make_dirs() {
    mkdir -p "$run_dir" "$bin_dir" "$log_dir" "$pg_dir" "$redis_dir" "$nginx_dir/conf" \
        "$nginx_dir/html" "$nginx_dir/tmp" "$tls_dir" "$secret_dir" "$storage/objects" \
        "$storage/tmp" "$run_dir/tmp/worker"
    chmod 0700 "$pg_dir" "$secret_dir" "$tls_dir"
    chmod 0750 "$run_dir"
    if [[ $EUID -eq 0 ]]; then
        chown "$run_user:$run_group" "$run_dir" "$bin_dir" "$log_dir" "$pg_dir" "$redis_dir" \
            "$tls_dir" "$secret_dir" "$storage" "$storage/objects" "$storage/tmp" \
            "$run_dir/tmp" "$run_dir/tmp/worker"
    fi
}

make_secret() {
    local f=$secret_dir/url_signing_secret
    [[ -s $f ]] && return 0
    say "generating the URL signing secret"
    (umask 077 && openssl rand -hex 32 >"$f.new" && mv "$f.new" "$f")
    [[ $EUID -ne 0 ]] || chown "$run_user:$run_group" "$f"
}

make_jwt_secret() {
    local f=$secret_dir/jwt_secret
    [[ -s $f ]] && return 0
    say "generating the access-token key"
    (umask 077 && openssl rand -hex 32 >"$f.new" && mv "$f.new" "$f")
    [[ $EUID -ne 0 ]] || chown "$run_user:$run_group" "$f"
}

make_cert() {
    [[ -s $tls_dir/cert.pem && -s $tls_dir/key.pem ]] && return 0
    say "generating a self-signed TLS certificate for localhost"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 825 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.pem" 2>/dev/null) ||
        die "openssl could not make the certificate"
    chmod 0644 "$tls_dir/cert.pem"
    [[ $EUID -ne 0 ]] || chown "$run_user:$run_group" "$tls_dir/cert.pem" "$tls_dir/key.pem"
}

write_conf() {
    local body_max=${KADR_BODY_MAX_BYTES:-1048576}
    local upload_max=${KADR_UPLOAD_MAX_BYTES:-5368709120}
    is_uint "$body_max" || die "KADR_BODY_MAX_BYTES must be a number of bytes"
    is_uint "$upload_max" || die "KADR_UPLOAD_MAX_BYTES must be a number of bytes"
    cat >"$conf.new" <<EOF
# kadr.conf of the local stack: written by scripts/stack.sh on every start.
# Put your own settings in local.conf next to this file (appended below, so
# they win), or in KADR_* environment variables (see: kadrctl config help).
database_url = host=$pg_dir port=$pg_port dbname=kadr user=kadr
redis_socket = $redis_sock
redis_prefix = kadr:
storage_backend = local
storage_root = $storage
public_url = http://127.0.0.1:$http_port
url_signing_secret_file = $secret_dir/url_signing_secret
jwt_secret_file = $secret_dir/jwt_secret
worker_tmp_dir = $run_dir/tmp/worker
api_metrics_file = $run_dir/api-metrics
body_max_bytes = $body_max
upload_max_bytes = $upload_max
EOF
    if [[ -f $run_dir/local.conf ]]; then
        printf '\n# from local.conf\n' >>"$conf.new"
        cat "$run_dir/local.conf" >>"$conf.new"
    fi
    chmod 0640 "$conf.new"
    [[ $EUID -ne 0 ]] || chown "$run_user:$run_group" "$conf.new"
    mv -f "$conf.new" "$conf"
    body_max_bytes=$body_max
    upload_max_bytes=$upload_max
}

# nginx's body limits follow the configuration as the programs read it
# (local.conf and KADR_* included, any size form such as 2G), so that
# nginx and kadr-api never disagree on what fits.
effective_limits() {
    local dump v
    dump=$(kadrctl config) || die "kadrctl config failed"
    v=$(sed -n 's/^body_max_bytes = //p' <<<"$dump")
    is_uint "$v" && body_max_bytes=$v
    v=$(sed -n 's/^upload_max_bytes = //p' <<<"$dump")
    is_uint "$v" && upload_max_bytes=$v
    return 0
}

save_state() {
    printf 'PORT_BASE=%s\nAPI_PROCS=%s\nWORKERS=%s\n' "$port_base" "$api_procs" "$workers" >"$state.new"
    mv -f "$state.new" "$state"
}

# ---------------------------------------------------------------- PostgreSQL
pg_running() { as_user "$PG_BIN/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; }
pg_ready() { pg_isready -q -h "$pg_dir" -p "$pg_port" -d postgres -U kadr; }

start_pg() {
    PG_BIN=$(pg_bin)
    if [[ ! -f $pg_data/PG_VERSION ]]; then
        say "initialising the PostgreSQL cluster in $pg_data"
        rm -rf "$pg_data"
        # trust is safe here: the only way in is the unix socket in a 0700
        # directory of the run user (listen_addresses is empty).
        as_user "$PG_BIN/initdb" -D "$pg_data" -U kadr -A trust -E UTF8 --locale=C.UTF-8 \
            >"$log_dir/initdb.log" 2>&1 || { cat "$log_dir/initdb.log" >&2; die "initdb failed"; }
        echo "include_if_exists = 'kadr.conf'" >>"$pg_data/postgresql.conf"
    fi
    cat >"$pg_data/kadr.conf.new" <<EOF
# Written by scripts/stack.sh on every start.
listen_addresses = ''
port = $pg_port
unix_socket_directories = '$pg_dir'
unix_socket_permissions = 0700
max_connections = 100
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
    [[ $EUID -ne 0 ]] || chown "$run_user:$run_group" "$pg_data/kadr.conf.new"
    mv -f "$pg_data/kadr.conf.new" "$pg_data/kadr.conf"
    if pg_running; then
        say "PostgreSQL is running"
    else
        say "starting PostgreSQL (socket $pg_dir/.s.PGSQL.$pg_port)"
        as_user "$PG_BIN/pg_ctl" -D "$pg_data" -l "$log_dir/postgres.log" -w -t 60 start >/dev/null ||
            { tail -n 20 "$log_dir/postgres.log" >&2; die "PostgreSQL did not start"; }
    fi
    wait_for 30 pg_ready || die "PostgreSQL does not answer on $pg_dir"
    if [[ $(psql -h "$pg_dir" -p "$pg_port" -U kadr -d postgres -tAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'kadr'") != 1 ]]; then
        say "creating database kadr"
        createdb -h "$pg_dir" -p "$pg_port" -U kadr -E UTF8 kadr
    fi
}

stop_pg() {
    PG_BIN=$(pg_bin)
    [[ -f $pg_data/postmaster.pid ]] || return 0
    if pg_running; then
        say "stopping PostgreSQL"
        as_user "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null
    fi
}

# ---------------------------------------------------------------- Redis
redis_ping() { [[ $(redis-cli -s "$redis_sock" ping 2>/dev/null) == PONG ]]; }

start_redis() {
    cat >"$redis_dir/redis.conf" <<EOF
# Written by scripts/stack.sh on every start. A unix socket only: no TCP
# port, so no password to manage.
daemonize yes
pidfile $redis_pid
port 0
unixsocket $redis_sock
unixsocketperm 700
dir $redis_dir
logfile $log_dir/redis.log
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
EOF
    if [[ -n $(live_pids "$redis_pid") ]]; then
        say "Redis is running"
    else
        say "starting Redis (socket $redis_sock)"
        rm -f "$redis_sock"
        as_user redis-server "$redis_dir/redis.conf" ||
            { tail -n 20 "$log_dir/redis.log" >&2; die "Redis did not start"; }
    fi
    wait_for 30 redis_ping || { tail -n 20 "$log_dir/redis.log" >&2; die "Redis does not answer on $redis_sock"; }
}

stop_redis() {
    local pids
    pids=$(live_pids "$redis_pid")
    # shellcheck disable=SC2086
    stop_pids Redis TERM 30 $pids
    rm -f "$redis_sock"
}

# ---------------------------------------------------------------- the API
start_api() {
    local pids n
    pids=$(live_pids "$api_pid")
    n=$(printf '%s' "$pids" | grep -c . || true)
    if [[ $n -ge $api_procs ]] && ! program_changed kadr-api; then
        say "the API is running ($n processes)"
        return 0
    fi
    program_changed kadr-api && [[ $n -gt 0 ]] && say "kadr-api was rebuilt; restarting the API"
    # Fewer than asked: one died. spawn-fcgi starts a full set, so replace
    # the survivors rather than mixing two generations.
    # shellcheck disable=SC2086
    stop_pids "the API" TERM 10 $pids
    rm -f "$api_sock" "$api_pid"
    say "starting the API ($api_procs processes on $api_sock)"
    # spawn-fcgi points the children's stderr at /dev/null; the shell puts
    # it back on the log before it becomes kadr-api (exec: same pid).
    as_user spawn-fcgi -s "$api_sock" -M 0660 -F "$api_procs" -P "$api_pid" -- \
        /bin/sh -c 'exec "$0" --config "$1" 2>>"$2"' \
        "$bin_dir/kadr-api" "$conf" "$log_dir/api.log" >/dev/null ||
        { tail -n 20 "$log_dir/api.log" >&2; die "spawn-fcgi could not start the API"; }
}

stop_api() {
    local pids
    pids=$(live_pids "$api_pid")
    # shellcheck disable=SC2086
    stop_pids "the API" TERM 15 $pids
    rm -f "$api_sock"
}

# ---------------------------------------------------------------- the worker
start_workers() {
    local i pidf
    for ((i = 1; i <= workers; i++)); do
        pidf=$run_dir/worker-$i.pid
        if [[ -n $(live_pids "$pidf") ]]; then
            if ! program_changed kadr-worker; then
                say "worker $i is running"
                continue
            fi
            say "kadr-worker was rebuilt; restarting worker $i"
            # shellcheck disable=SC2046
            stop_pids "worker $i" TERM $((${KADR_WORKER_GRACE_S:-30} + 10)) $(live_pids "$pidf")
        fi
        rm -f "$pidf"
        say "starting worker $i"
        # The shell writes its own pid and becomes the worker (exec), so the
        # pidfile names the worker itself.
        (cd "$run_dir" && exec "${as_user_cmd[@]}" setsid /bin/sh -c 'echo $$ >"$0"; exec "$@"' \
            "$pidf" "$bin_dir/kadr-worker" --config "$conf") </dev/null >>"$log_dir/worker.log" 2>&1 &
        wait_for 10 test -s "$pidf" || die "worker $i did not start (see $log_dir/worker.log)"
    done
}

stop_workers() {
    local pids="" f grace=${KADR_WORKER_GRACE_S:-30}
    for f in "$run_dir"/worker-*.pid; do
        [[ -f $f ]] || continue
        pids="$pids $(live_pids "$f")"
    done
    # A worker finishes or hands back its running jobs within its grace
    # period (worker_grace_s) after SIGTERM.
    # shellcheck disable=SC2086
    stop_pids "the worker" TERM $((grace + 10)) $pids
}

# ---------------------------------------------------------------- the notifier
# kadr-notify delivers webhooks from the outbox table; one per stack (several
# could share the work). A build without it runs the stack without webhooks.
start_notify() {
    local pidf=$run_dir/notify.pid
    [[ -x $bin_dir/kadr-notify ]] || return 0
    if [[ -n $(live_pids "$pidf") ]]; then
        if ! program_changed kadr-notify; then
            say "the notifier is running"
            return 0
        fi
        say "kadr-notify was rebuilt; restarting it"
        # shellcheck disable=SC2046
        stop_pids "the notifier" TERM 30 $(live_pids "$pidf")
    fi
    rm -f "$pidf"
    say "starting the notifier"
    (cd "$run_dir" && exec "${as_user_cmd[@]}" setsid /bin/sh -c 'echo $$ >"$0"; exec "$@"' \
        "$pidf" "$bin_dir/kadr-notify" --config "$conf") </dev/null >>"$log_dir/notify.log" 2>&1 &
    wait_for 10 test -s "$pidf" || die "the notifier did not start (see $log_dir/notify.log)"
}

stop_notify() {
    local pids
    pids=$(live_pids "$run_dir/notify.pid")
    # Requests in flight end within notify_timeout_ms.
    # shellcheck disable=SC2086
    stop_pids "the notifier" TERM 30 $pids
}

# ---------------------------------------------------------------- the scheduler
# kadr-scheduler pushes due work (run_at, retries, lost pushes, expired
# leases) and applies retention; several may run, one leads at a time.
start_scheduler() {
    local pidf=$run_dir/scheduler.pid
    if [[ -n $(live_pids "$pidf") ]]; then
        if ! program_changed kadr-scheduler; then
            say "the scheduler is running"
            return 0
        fi
        say "kadr-scheduler was rebuilt; restarting it"
        # shellcheck disable=SC2046
        stop_pids "the scheduler" TERM 15 $(live_pids "$pidf")
    fi
    rm -f "$pidf"
    say "starting the scheduler"
    (cd "$run_dir" && exec "${as_user_cmd[@]}" setsid /bin/sh -c 'echo $$ >"$0"; exec "$@"' \
        "$pidf" "$bin_dir/kadr-scheduler" --config "$conf") </dev/null >>"$log_dir/scheduler.log" 2>&1 &
    wait_for 10 test -s "$pidf" || die "the scheduler did not start (see $log_dir/scheduler.log)"
}

stop_scheduler() {
    local pids
    pids=$(live_pids "$run_dir/scheduler.pid")
    # shellcheck disable=SC2086
    stop_pids "the scheduler" TERM 15 $pids
}

# ---------------------------------------------------------------- nginx
# The stack's values for the templates' markers (scripts/nginx-conf.sh
# knows the markers; it fails on one left without a value).
render() {
    KN_USER_LINE=$user_line KN_NGINX_WORKERS=${KADR_STACK_NGINX_WORKERS:-2} \
        KN_NGINX_DIR=$nginx_dir KN_LOG_DIR=$log_dir KN_TLS_DIR=$tls_dir \
        KN_LISTEN_ADDR=${KADR_STACK_LISTEN:-127.0.0.1} KN_HTTP_PORT=$http_port \
        KN_HTTPS_PORT=$https_port KN_API_SOCK=$api_sock KN_STORAGE_ROOT=$storage \
        KN_BODY_MAX=$body_max_bytes KN_UPLOAD_MAX=$upload_max_bytes KN_API_RATE=$api_rate \
        KN_API_BURST=$api_burst KN_AUTH_RATE=$auth_rate KN_AUTH_BURST=$auth_burst \
        KN_CONN_LIMIT=$conn_limit KN_RATE_EXEMPT=$rate_exempt \
        "$top/scripts/nginx-conf.sh" render "$1" "$2" || die "rendering $1 failed"
}

# nginx's per-address limits (kadr.conf.in), chosen at render time:
# KADR_STACK_API_RATE (requests per second or minute, "200r/s"),
# KADR_STACK_API_BURST, KADR_STACK_AUTH_RATE and KADR_STACK_AUTH_BURST (the
# stricter zone of /api/v1/auth/), KADR_STACK_CONN_LIMIT (connections at
# once), KADR_STACK_RATE_EXEMPT (space-separated addresses or CIDRs not
# limited; default loopback, where the stack's own tools and tests run;
# "none" exempts nothing).
rate_settings() {
    api_rate=${KADR_STACK_API_RATE:-200r/s}
    api_burst=${KADR_STACK_API_BURST:-400}
    auth_rate=${KADR_STACK_AUTH_RATE:-5r/s}
    auth_burst=${KADR_STACK_AUTH_BURST:-20}
    conn_limit=${KADR_STACK_CONN_LIMIT:-100}
    local a list=${KADR_STACK_RATE_EXEMPT:-127.0.0.1 ::1}
    [[ $api_rate =~ ^[1-9][0-9]*r/[sm]$ ]] || die "KADR_STACK_API_RATE must look like 200r/s"
    [[ $auth_rate =~ ^[1-9][0-9]*r/[sm]$ ]] || die "KADR_STACK_AUTH_RATE must look like 5r/s"
    is_uint "$api_burst" || die "KADR_STACK_API_BURST must be a number"
    is_uint "$auth_burst" || die "KADR_STACK_AUTH_BURST must be a number"
    is_uint "$conn_limit" && (( conn_limit >= 1 )) || die "KADR_STACK_CONN_LIMIT must be a number >= 1"
    rate_exempt=
    [[ $list == none ]] && list=
    for a in $list; do
        [[ $a =~ ^[0-9A-Fa-f.:/]+$ ]] || die "KADR_STACK_RATE_EXEMPT: $a is not an address"
        rate_exempt="$rate_exempt$a 1; "
    done
}

nginx_cmd() { nginx -p "$nginx_dir/" -c conf/kadr.conf -e "$log_dir/nginx-error.log" "$@"; }

start_nginx() {
    local f changed=0 pids
    user_line=
    [[ $EUID -eq 0 ]] && user_line="user $run_user $run_group;"
    rate_settings
    for f in "$top"/nginx/*.in; do
        render "$f" "$nginx_dir/conf/$(basename "$f" .in).new"
    done
    for f in "$top"/nginx/*.conf; do
        cp "$f" "$nginx_dir/conf/$(basename "$f").new"
    done
    for f in "$nginx_dir"/conf/*.new; do
        cmp -s "$f" "${f%.new}" || changed=1
        mv -f "$f" "${f%.new}"
    done
    cp "$top/nginx/index.html" "$nginx_dir/html/index.html"
    nginx_cmd -t -q 2>"$log_dir/nginx-test.log" ||
        { cat "$log_dir/nginx-test.log" >&2; die "the rendered nginx configuration is invalid"; }
    pids=$(live_pids "$nginx_pid")
    if [[ -n $pids ]]; then
        if [[ $changed -eq 1 ]]; then
            say "nginx is running; reloading its new configuration"
            nginx_cmd -s reload
        else
            say "nginx is running"
        fi
        return 0
    fi
    local p
    for p in "$http_port" "$https_port"; do
        port_in_use "$p" && die "port $p is taken by another program (choose another --port-base)"
    done
    say "starting nginx (http://127.0.0.1:$http_port, https://127.0.0.1:$https_port)"
    nginx_cmd || { tail -n 20 "$log_dir/nginx-error.log" >&2; die "nginx did not start"; }
    wait_for 10 port_in_use "$http_port" || die "nginx does not listen on $http_port"
}

stop_nginx() {
    local pids
    pids=$(live_pids "$nginx_pid")
    # QUIT: finish the requests in flight, then exit.
    # shellcheck disable=SC2086
    stop_pids nginx QUIT 20 $pids
}

# ---------------------------------------------------------------- readiness
api_healthy() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        "http://127.0.0.1:$http_port/api/v1/health") == 200 ]]
}

# ---------------------------------------------------------------- commands
do_start() {
    local api worker ctl notify= sched
    need openssl openssl
    need pg_isready postgresql-client-15
    need redis-server redis-server
    need redis-cli redis-tools
    need nginx nginx
    need spawn-fcgi spawn-fcgi
    need curl curl
    [[ $EUID -ne 0 ]] || need setpriv util-linux
    if [[ $infra_only -eq 0 ]]; then
        api=$(find_program kadr-api fcgi) || die "kadr-api not found: build first (see README) or set KADR_BIN_DIR"
        worker=$(find_program kadr-worker workers) || die "kadr-worker not found: build first or set KADR_BIN_DIR"
        ctl=$(find_program kadrctl tools) || die "kadrctl not found: build first or set KADR_BIN_DIR"
        sched=$(find_program kadr-scheduler workers) || die "kadr-scheduler not found: build first or set KADR_BIN_DIR"
        notify=$(find_program kadr-notify notify) ||
            say "kadr-notify not found: the stack runs without webhook delivery"
    fi
    ensure_user
    run_group=$(id -gn "$run_user")
    resolve_dir "$dir" 1
    set_paths
    user_prefix
    load_state
    # A stack that runs keeps its ports; changing them needs a stop first.
    if [[ -n $opt_port_base && $opt_port_base != "$port_base" && -f $state ]] &&
        { [[ -n $(live_pids "$nginx_pid") ]] || [[ -f $pg_data/postmaster.pid ]]; }; then
        die "the stack in $run_dir runs on port base $port_base; stop it before changing ports"
    fi
    [[ -z $opt_port_base ]] || { is_uint "$opt_port_base" || die "--port-base must be a number"; port_base=$opt_port_base; }
    [[ -z $opt_api_procs ]] || { is_uint "$opt_api_procs" && (( opt_api_procs >= 1 && opt_api_procs <= 64 )) || die "--api-procs must be 1..64"; api_procs=$opt_api_procs; }
    [[ -z $opt_workers ]] || { is_uint "$opt_workers" && (( opt_workers >= 1 && opt_workers <= 16 )) || die "--workers must be 1..16"; workers=$opt_workers; }
    derive_ports
    make_dirs
    save_state
    make_secret
    make_jwt_secret
    make_cert
    write_conf
    if [[ $infra_only -eq 0 ]]; then
        install_program "$api"
        install_program "$worker"
        install_program "$ctl"
        install_program "$sched"
        [[ -z $notify ]] || install_program "$notify"
        kadrctl --check-config >/dev/null || die "kadr.conf is invalid (kadrctl --config $conf --check-config)"
        effective_limits
    fi
    start_pg
    start_redis
    if [[ $infra_only -eq 0 ]]; then
        kadrctl migrate --sql-dir "$top/sql" >>"$log_dir/migrate.log" 2>&1 ||
            { tail -n 20 "$log_dir/migrate.log" >&2; die "migrations failed (see $log_dir/migrate.log)"; }
        start_api
        start_workers
        start_scheduler
        start_notify
    fi
    start_nginx
    if [[ $infra_only -eq 0 ]]; then
        if ! wait_for 30 api_healthy; then
            curl -s --max-time 5 "http://127.0.0.1:$http_port/api/v1/health" >&2 || true
            echo >&2
            tail -n 20 "$log_dir/api.log" >&2 || true
            die "the API is not healthy (logs in $log_dir)"
        fi
        local i
        for ((i = 1; i <= workers; i++)); do
            [[ -n $(live_pids "$run_dir/worker-$i.pid") ]] ||
                { tail -n 20 "$log_dir/worker.log" >&2; die "worker $i exited (see $log_dir/worker.log)"; }
        done
    fi
    say "ready: http://127.0.0.1:$http_port  https://127.0.0.1:$https_port  (config $conf, logs $log_dir)"
}

# stop and status act for whoever started the stack: as root, the owner of
# DIR is the run user.
adopt_owner() {
    if [[ $EUID -eq 0 ]]; then
        run_user=$(stat -c %U "$run_dir")
        run_group=$(stat -c %G "$run_dir")
    else
        run_group=$(id -gn)
    fi
    user_prefix
}

do_stop() {
    if [[ ! -e $dir ]]; then
        say "no stack in $dir; nothing to stop"
        return 0
    fi
    resolve_dir "$dir" 0
    set_paths
    adopt_owner
    stop_nginx
    stop_workers
    stop_scheduler
    stop_notify
    stop_api
    stop_redis
    stop_pg
    say "stopped ($run_dir)"
}

# status_line NAME PIDS [WANT]: one line; fewer than WANT live processes
# (default 1) makes the stack not up.
status_line() {
    local name=$1 pids n want=${3:-1}
    pids=$(echo $2)
    n=$(wc -w <<<"$pids")
    if [[ $n -ge $want ]]; then
        printf '%-12s running  pid %s\n' "$name" "$pids"
    elif [[ $n -gt 0 ]]; then
        printf '%-12s degraded %s of %s running: pid %s\n' "$name" "$n" "$want" "$pids"
        all_up=0
    else
        printf '%-12s stopped\n' "$name"
        all_up=0
    fi
}

do_status() {
    local f pids pg_pid=""
    resolve_dir "$dir" 0
    set_paths
    load_state
    derive_ports
    all_up=1
    if [[ -f $pg_data/postmaster.pid ]]; then
        pg_pid=$(head -n 1 "$pg_data/postmaster.pid")
        alive "$pg_pid" || pg_pid=""
    fi
    echo "stack in $run_dir: http://127.0.0.1:$http_port https://127.0.0.1:$https_port"
    status_line postgresql "$pg_pid"
    status_line redis "$(live_pids "$redis_pid")"
    status_line api "$(live_pids "$api_pid")" "$api_procs"
    pids=""
    for f in "$run_dir"/worker-*.pid; do
        [[ -f $f ]] && pids="$pids $(live_pids "$f")"
    done
    status_line worker "$pids" "$workers"
    status_line scheduler "$(live_pids "$run_dir/scheduler.pid")"
    [[ ! -x $bin_dir/kadr-notify ]] || status_line notify "$(live_pids "$run_dir/notify.pid")"
    status_line nginx "$(live_pids "$nginx_pid")"
    if [[ $all_up -eq 1 ]] && api_healthy; then
        echo "health       ok"
    else
        echo "health       not ok"
        return 3
    fi
}

do_env() {
    resolve_dir "$dir" 0
    set_paths
    load_state
    derive_ports
    echo "KADR_STACK_DIR=$run_dir"
    echo "KADR_CONFIG=$conf"
    echo "KADR_URL=http://127.0.0.1:$http_port"
    echo "KADR_HTTPS_URL=https://127.0.0.1:$https_port"
    echo "KADR_TLS_CERT=$tls_dir/cert.pem"
    echo "KADR_BIN=$bin_dir"
    echo "KADR_STORAGE=$storage"
    echo "KADR_LOGS=$log_dir"
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
env) do_env ;;
esac
