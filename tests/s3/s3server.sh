#!/bin/bash
# s3server.sh: the S3 server of kadr's tests, on loopback: s3rver (data in
# DIR) behind verify-proxy.js, which checks every SigV4 signature the way S3
# does (s3rver alone does not). Clients talk to PORT; s3rver listens on
# PORT+1 and is reached only through the proxy.
#
#   tests/s3/s3server.sh start DIR PORT [BUCKET]   (prints nothing; waits until ready)
#   tests/s3/s3server.sh stop DIR
#   tests/s3/s3server.sh down DIR          (S3 unreachable: the front stops)
#   tests/s3/s3server.sh up DIR PORT       (and comes back; s3rver kept its data)
#   tests/s3/s3server.sh fault PORT QUERY  (verify-proxy.js's fault switch:
#                                           "status=503&code=SlowDown&count=3",
#                                           "throttle=200000&methods=PUT", "clear")
# Credentials: access key S3RVER, secret S3RVER, regions us-east-1 and
# eu-central-1 (a request signed for any other region is refused).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?start|stop}; dir=${2:?data dir}
regions=us-east-1,eu-central-1

install_deps() {
    # npm ci installs exactly the locked versions; once per checkout
    if [ ! -x "$here/node_modules/.bin/s3rver" ]; then
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

case $cmd in
start)
    port=${3:?port}; bucket=${4:-kadr}
    install_deps
    mkdir -p "$dir/data"
    setsid node "$here/node_modules/.bin/s3rver" -d "$dir/data" -a 127.0.0.1 -p $((port + 1)) \
        --no-vhost-buckets --configure-bucket "$bucket" -s >"$dir/s3rver.log" 2>&1 &
    echo $! >"$dir/s3rver.pid"
    setsid node "$here/verify-proxy.js" "$port" $((port + 1)) S3RVER S3RVER "$dir/data" "$regions" >"$dir/proxy.log" 2>&1 &
    echo $! >"$dir/proxy.pid"
    for _ in $(seq 1 300); do
        # an anonymous request is refused by the proxy (403) once both are up
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/$bucket" || true)
        up=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((port + 1))/$bucket" || true)
        if [ "$code" = 403 ] && [ "$up" = 200 ]; then exit 0; fi
        sleep 0.1
    done
    echo "s3server.sh: the S3 server did not come up; see $dir/*.log" >&2
    exit 1
    ;;
down)
    if [ -f "$dir/proxy.pid" ]; then
        kill "$(cat "$dir/proxy.pid")" 2>/dev/null || true
        rm -f "$dir/proxy.pid"
    fi
    ;;
up)
    port=${3:?port}
    setsid node "$here/verify-proxy.js" "$port" $((port + 1)) S3RVER S3RVER "$dir/data" "$regions" >>"$dir/proxy.log" 2>&1 &
    echo $! >"$dir/proxy.pid"
    for _ in $(seq 1 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)
        [ "$code" = 403 ] && exit 0
        sleep 0.1
    done
    echo "s3server.sh: the front did not come back" >&2
    exit 1
    ;;
fault)
    # here DIR is the proxy's port
    if [[ ${3:?query} == clear ]]; then
        curl -fsS -X DELETE "http://127.0.0.1:$dir/__faults"
    else
        curl -fsS -X PUT "http://127.0.0.1:$dir/__faults?$3"
    fi
    ;;
stop)
    for f in proxy s3rver; do
        if [ -f "$dir/$f.pid" ]; then
            kill "$(cat "$dir/$f.pid")" 2>/dev/null || true
            rm -f "$dir/$f.pid"
        fi
    done
    ;;
*)
    echo "usage: $0 start DIR PORT [BUCKET] | stop DIR | down DIR | up DIR PORT | fault PORT QUERY" >&2
    exit 2
    ;;
esac
