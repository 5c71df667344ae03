#!/usr/bin/env bash
# Starts and stops a real two-node clustered MQTT broker on loopback, for integration tests:
# ejabberd's mod_mqtt (MQTT 3.1.1 and 5), two Erlang nodes joined with ejabberd's join_cluster.
#
#   scripts/cluster-broker.sh start DIR PORT1 PORT2
#       node 1 serves MQTT on 127.0.0.1:PORT1, node 2 on 127.0.0.1:PORT2; returns once both accept
#       MQTT connections and the cluster has both nodes
#   scripts/cluster-broker.sh stop DIR            stops both nodes (idempotent)
#   scripts/cluster-broker.sh stop-node DIR 1|2   stops one node (SIGTERM, clean shutdown)
#   scripts/cluster-broker.sh kill-node DIR 1|2   kills one node (SIGKILL, a crash)
#   scripts/cluster-broker.sh start-node DIR 1|2
#       starts a stopped node again (same name, data and port); returns once it serves MQTT and
#       is back in the cluster (if the other node runs). With both stopped, start the one stopped
#       last first (or both at once, in the background).
#   scripts/cluster-broker.sh status DIR          prints each node's state and the cluster
#
# Exit status: 0 done, 1 failed (the message and the tail of the nodes' logs are on stderr),
# 2 usage error, 3 ejabberd not installed.
#
# Needs Debian 12's ejabberd (23.01): `sudo apt-get install -y ejabberd`. Nothing of the packaged
# service is used (/etc/ejabberd, /var/lib/ejabberd, its node and cookie): it can be stopped and
# disabled (`systemctl disable --now ejabberd`). Everything of a cluster lives in DIR: the configs,
# the Erlang cookie (DIR/.erlang.cookie, HOME=DIR for the nodes), the Mnesia databases and the logs
# (DIR/n1/log/ejabberd.log, error.log, console.log, same for n2). Each start makes a fresh cluster
# with node names n1-<random>@127.0.0.1 and n2-<random>@127.0.0.1, so clusters in different
# DIRs (and ports) run side by side; they share epmd on 127.0.0.1:4369, which the first node starts
# if it is not running and which stays up. Erlang distribution listens on 127.0.0.1 only, on a port
# the kernel picks. No other listener (XMPP, HTTP) is configured.
#
# Broker behaviour (see the options in write_config):
# - Authentication: ejabberd's MQTT accepts no connection without a password (unless with a TLS
#   client certificate). With the anonymous method configured here, any username and any non-empty
#   password are accepted; a CONNECT without credentials gets "not authorized" (CONNACK 5, or
#   0x87 in MQTT 5). The username must not contain "/" and, if it has an "@", must end in
#   "@localhost". Sessions are keyed by username + client id.
# - Any client may publish and subscribe to any topic (no access_publish/access_subscribe rules),
#   except publishing to topics starting with "$", which mod_mqtt always refuses (dropped after
#   the PUBACK in 3.1.1, PUBACK 0x90 in 5). No shared subscriptions ($share/...: disconnected).
# - No payload size limit, no topic depth limit, no limit on retained messages returned per
#   subscription, no limit on the queue of a session; persistent sessions expire after
#   CLUSTER_BROKER_SESSION_EXPIRY seconds (default 3600) without a connection. A session lives
#   in the node it last connected to: resumable from either node, lost if that node stops.
# - ejabberd 23.01 caveat: a node only returns retained messages on topics it has seen retained
#   itself since it started (its topic index is local; the messages are stored cluster-wide), so
#   a retained message published through node 1 is not sent to a new subscriber on node 2 until
#   node 2 restarts. Clearing (empty retained payload) works from either node.
#
# Environment: CLUSTER_BROKER_TIMEOUT (seconds to wait for a start, default 120),
# CLUSTER_BROKER_LOGLEVEL (ejabberd loglevel, default info),
# CLUSTER_BROKER_SESSION_EXPIRY (seconds, default 3600).
set -euo pipefail

prog=cluster-broker
timeout_s=${CLUSTER_BROKER_TIMEOUT:-120}
loglevel=${CLUSTER_BROKER_LOGLEVEL:-info}
session_expiry=${CLUSTER_BROKER_SESSION_EXPIRY:-3600}

usage() {
  sed -n '5,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "$prog: $*" >&2
  exit 1
}

# Where the ejabberd Erlang applications are: the ERL_LIBS the packaged ejabberdctl uses, else
# the directory holding an ejabberd-<version> application.
find_erl_libs() {
  local libs="" app
  if [ -r /usr/sbin/ejabberdctl ]; then
    libs=$(sed -n "s/^ERL_LIBS='\(.*\)'\$/\1/p" /usr/sbin/ejabberdctl | head -n 1) || libs=""
  fi
  if [ -z "$libs" ] || ! compgen -G "$libs/ejabberd-*/ebin/ejabberd.app" >/dev/null; then
    libs=""
    for app in /usr/lib/*/ejabberd-*/ebin/ejabberd.app /usr/lib/ejabberd*/ebin/ejabberd.app \
      /usr/local/lib/ejabberd*/ebin/ejabberd.app /usr/lib/erlang/lib/ejabberd-*/ebin/ejabberd.app; do
      if [ -f "$app" ]; then
        libs=$(dirname "$(dirname "$(dirname "$app")")")
        break
      fi
    done
  fi
  printf '%s' "$libs"
}

require_ejabberd() {
  ERL_LIBS_DIR=$(find_erl_libs)
  if ! command -v erl >/dev/null || [ -z "$ERL_LIBS_DIR" ]; then
    echo "$prog: ejabberd is not installed: sudo apt-get install -y ejabberd" >&2
    exit 3
  fi
}

check_port() {
  case $1 in
    '' | *[!0-9]*) usage ;;
  esac
  if [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then die "port out of range: $1"; fi
}

# Absolute path of DIR, refusing characters that would need quoting inside Erlang terms.
abs_dir() {
  local d=$1
  case $d in
    *'"'* | *\\* | *"'"*) die "directory name must not contain quotes or backslashes: $d" ;;
  esac
  case $d in
    /*) ;;
    *) d="$PWD/$d" ;;
  esac
  printf '%s' "${d%/}"
}

load_state() {
  [ -f "$DIR/cluster.env" ] || return 1
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
}

node_name() { # N
  if [ "$1" = 1 ]; then printf '%s' "$NODE1"; else printf '%s' "$NODE2"; fi
}

node_port() { # N
  if [ "$1" = 1 ]; then printf '%s' "$PORT1"; else printf '%s' "$PORT2"; fi
}

# The pid of node N if its beam process runs (checked against the node name, not only the pid).
node_pid() { # N
  local pidfile="$DIR/n$1/beam.pid" pid args
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  # (No pipe into grep -q here: with pipefail, the writer's SIGPIPE would fail the test.)
  args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  grep -qxF -- "$(node_name "$1")" <<<"$args" || return 1
  printf '%s' "$pid"
}

# Sends an MQTT 3.1.1 CONNECT (clean session, username and password "probe") to 127.0.0.1:PORT and
# succeeds if a CONNACK with return code 0 comes back.
mqtt_probe() { # PORT
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x10\x2e\x00\x04MQTT\x04\xc2\x00\x0a\x00\x14cluster-broker-probe\x00\x05probe\x00\x05probe" >&3
    reply=$(head -c 4 <&3 | od -An -tx1 | tr -d " \n")
    printf "\xe0\x00" >&3 2>/dev/null || true
    [ "$reply" = 20020000 ]
  ' probe "$1" 2>/dev/null
}

port_in_use() { # PORT
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' probe "$1" 2>/dev/null
}

# Runs an ejabberdctl command against NODE, from a hidden Erlang node of this cluster.
ctl() { # NODE COMMAND [ARGS...]
  local node=$1
  shift
  (cd "$DIR" && HOME="$DIR" ERL_LIBS="$ERL_LIBS_DIR" timeout 60 erl \
    -name "ctl-$TAG-$$-$RANDOM@127.0.0.1" -hidden -noinput -noshell \
    -kernel inet_dist_use_interface '{127,0,0,1}' \
    -s ejabberd_ctl -extra "$node" "$@" </dev/null)
}

cluster_size() { # NODE: how many of this cluster's nodes NODE sees running
  local out
  out=$(ctl "$1" list_cluster 2>/dev/null) || {
    echo 0
    return
  }
  printf '%s\n' "$out" | grep -cE "(^|[^A-Za-z0-9_.-])($NODE1|$NODE2)([^A-Za-z0-9_.-]|\$)" || true
}

write_config() { # N
  local n=$1 port
  port=$(node_port "$n")
  cat >"$DIR/n$n/ejabberd.yml" <<EOF
# Generated by scripts/cluster-broker.sh for node $(node_name "$n"): MQTT on 127.0.0.1:$port.
hosts:
  - localhost
loglevel: $loglevel
hide_sensitive_log_data: false
# No XMPP, HTTP or other listener: MQTT only, on loopback.
listen:
  -
    port: $port
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 1024
    # Packets of any size (the default too, written out).
    max_payload_size: infinity
    # Messages waiting in a connection's Erlang process before it is closed as overloaded.
    max_fsm_queue: 100000
# Any username with any non-empty password (see the top of the script).
auth_method: [anonymous]
anonymous_protocol: login_anon
# No TLS certificates and no ACME requests for them.
acme:
  auto: false
modules:
  mod_mqtt:
    # No access_publish / access_subscribe: anyone may publish and subscribe to any topic.
    max_queue: unlimited
    max_topic_depth: infinity
    match_retained_limit: infinity
    session_expiry: $session_expiry
EOF
}

launch_node() { # N
  local n=$1 nd="$DIR/n$1" name
  name=$(node_name "$n")
  mkdir -p "$nd/db" "$nd/log" "$nd/modules"
  write_config "$n"
  (
    cd "$nd"
    export HOME="$DIR" \
      ERL_LIBS="$ERL_LIBS_DIR" \
      EJABBERD_CONFIG_PATH="$nd/ejabberd.yml" \
      EJABBERD_LOG_PATH="$nd/log/ejabberd.log" \
      EJABBERD_PID_PATH="$nd/ejabberd.pid" \
      ERL_CRASH_DUMP="$nd/log/erl_crash.dump" \
      CONTRIB_MODULES_PATH="$nd/modules" \
      CONTRIB_MODULES_CONF_DIR="$nd/modules" \
      ERL_EPMD_ADDRESS=127.0.0.1
    unset ERL_INETRC ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS
    echo "--- $(date '+%F %T') starting $name" >>"$nd/log/console.log"
    # The log goes to log/ejabberd.log; quiet: only critical messages (and what the VM itself
    # prints) in console.log. erl execs into beam, so $! is the node's pid. setsid: the node
    # leaves the caller's session and process group (no terminal signals), and nothing of it
    # holds the caller's stdout/stderr.
    setsid erl -name "$name" -noinput -noshell \
      +K true +sbwt none +sbwtdcpu none +sbwtdio none \
      -kernel inet_dist_use_interface '{127,0,0,1}' \
      -mnesia dir "\"$nd/db\"" \
      -ejabberd quiet true \
      -s ejabberd </dev/null >>"$nd/log/console.log" 2>&1 &
    echo $! >"$nd/beam.pid"
  )
}

show_logs() {
  local n f
  for n in 1 2; do
    for f in console.log error.log ejabberd.log; do
      if [ -s "$DIR/n$n/log/$f" ]; then
        echo "----- node $n: tail of $DIR/n$n/log/$f" >&2
        tail -n 25 "$DIR/n$n/log/$f" >&2
      fi
    done
  done
}

# Whether node N runs, asking a few times over a second: while erl execs into erlexec and beam,
# /proc/PID/cmdline can read empty for a moment, which a loaded machine makes likely.
node_alive() { # N
  local try
  for try in 1 2 3 4 5; do
    node_pid "$1" >/dev/null && return 0
    [ "$try" = 5 ] || sleep 0.2
  done
  return 1
}

# Waits until the deadline for node N to answer MQTT; fails if its process is gone.
wait_mqtt() { # N DEADLINE
  local n=$1 deadline=$2 port
  port=$(node_port "$n")
  while :; do
    node_alive "$n" || {
      echo "$prog: node $n ($(node_name "$n")) exited while starting" >&2
      return 1
    }
    mqtt_probe "$port" && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$prog: node $n ($(node_name "$n")) does not accept MQTT connections" \
        "on 127.0.0.1:$port" >&2
      return 1
    fi
    sleep 0.2
  done
}

wait_cluster() { # DEADLINE
  local deadline=$1 seen
  while :; do
    seen=$(cluster_size "$NODE1")
    [ "$seen" -ge 2 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$prog: the cluster does not have both nodes (node 1 sees $seen of them)" >&2
      ctl "$NODE1" list_cluster >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

stop_nodes() { # N...
  local n pid pids=()
  for n in "$@"; do
    if pid=$(node_pid "$n"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  # A clean shutdown (SIGTERM makes the Erlang VM run init:stop) takes about a second; a node
  # still there after 15 s is killed.
  for pid in "${pids[@]}"; do
    if ! wait_gone "$pid" 300; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 200 || true
    fi
  done
  for n in "$@"; do rm -f "$DIR/n$n/beam.pid"; done
}

# Waits (CHECKS x 50 ms, default 10 s) until the process is gone or a zombie.
wait_gone() { # PID [CHECKS]
  local _
  for _ in $(seq 1 "${2:-200}"); do
    [ -d "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ] || return 0
    sleep 0.05
  done
  return 1
}

fail_start() {
  echo "$prog: failed to start the cluster in $DIR" >&2
  show_logs
  stop_nodes 1 2
  exit 1
}

cmd_start() {
  local started=$SECONDS deadline n
  deadline=$((SECONDS + timeout_s))
  check_port "$PORT1"
  check_port "$PORT2"
  [ "$PORT1" != "$PORT2" ] || die "the two MQTT ports must differ"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  if load_state; then
    if node_pid 1 >/dev/null || node_pid 2 >/dev/null; then
      die "a cluster is already running in $DIR (stop it first)"
    fi
  fi
  for n in "$PORT1" "$PORT2"; do
    port_in_use "$n" && die "127.0.0.1:$n is already in use"
  done
  rm -rf "$DIR/n1" "$DIR/n2" "$DIR/cluster.env"
  TAG=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
  NODE1="n1-$TAG@127.0.0.1"
  NODE2="n2-$TAG@127.0.0.1"
  (
    umask 077
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' >"$DIR/.erlang.cookie.new"
    mv -f "$DIR/.erlang.cookie.new" "$DIR/.erlang.cookie"
  )
  chmod 400 "$DIR/.erlang.cookie"
  cat >"$DIR/cluster.env" <<EOF
TAG=$TAG
NODE1=$NODE1
NODE2=$NODE2
PORT1=$PORT1
PORT2=$PORT2
EOF
  launch_node 1
  launch_node 2
  wait_mqtt 1 "$deadline" || fail_start
  wait_mqtt 2 "$deadline" || fail_start
  # Node 2 drops its own (empty) database, copies node 1's and restarts ejabberd.
  if ! out=$(ctl "$NODE2" join_cluster "$NODE1" 2>&1); then
    echo "$prog: join_cluster failed: $out" >&2
    fail_start
  fi
  wait_cluster "$deadline" || fail_start
  wait_mqtt 2 "$deadline" || fail_start
  wait_mqtt 1 "$deadline" || fail_start
  echo "$prog: cluster up in $((SECONDS - started))s: node 1 $NODE1 on 127.0.0.1:$PORT1," \
    "node 2 $NODE2 on 127.0.0.1:$PORT2 (logs in $DIR/n1/log, $DIR/n2/log)"
}

cmd_start_node() { # N
  local n=$1 other deadline
  deadline=$((SECONDS + timeout_s))
  other=$((3 - n))
  node_pid "$n" >/dev/null && die "node $n is already running"
  port_in_use "$(node_port "$n")" && die "127.0.0.1:$(node_port "$n") is already in use"
  launch_node "$n"
  if ! wait_mqtt "$n" "$deadline"; then
    if ! node_pid "$other" >/dev/null; then
      echo "$prog: node $other is stopped too: if node $other was the last one to stop, node $n" \
        "waits for its data (Mnesia) and starts only once node $other is started as well" >&2
    fi
    show_logs
    stop_nodes "$n"
    exit 1
  fi
  if node_pid "$other" >/dev/null; then
    if ! wait_cluster "$deadline"; then
      show_logs
      exit 1
    fi
  fi
  echo "$prog: node $n $(node_name "$n") up on 127.0.0.1:$(node_port "$n")"
}

cmd_status() {
  local n pid
  for n in 1 2; do
    if pid=$(node_pid "$n"); then
      if mqtt_probe "$(node_port "$n")"; then
        echo "node $n $(node_name "$n"): running (pid $pid), MQTT on 127.0.0.1:$(node_port "$n")"
      else
        echo "node $n $(node_name "$n"): running (pid $pid), no MQTT on 127.0.0.1:$(node_port "$n")"
      fi
    else
      echo "node $n $(node_name "$n"): stopped"
    fi
  done
  for n in 1 2; do
    if node_pid "$n" >/dev/null; then
      echo "cluster as node $n sees it:"
      ctl "$(node_name "$n")" list_cluster || true
      return 0
    fi
  done
}

node_arg() {
  case ${1:-} in
    1 | 2) ;;
    *) usage ;;
  esac
}

[ $# -ge 2 ] || usage
cmd=$1
DIR=$(abs_dir "$2")
case $cmd in
  start)
    [ $# -eq 4 ] || usage
    PORT1=$3
    PORT2=$4
    require_ejabberd
    cmd_start
    ;;
  stop)
    [ $# -eq 2 ] || usage
    load_state || exit 0
    stop_nodes 1 2
    ;;
  stop-node | kill-node | start-node)
    [ $# -eq 3 ] || usage
    node_arg "$3"
    load_state || die "no cluster in $DIR (run start first)"
    DIR=$(cd "$DIR" && pwd -P)
    case $cmd in
      stop-node) stop_nodes "$3" ;;
      kill-node)
        if pid=$(node_pid "$3"); then
          kill -KILL "$pid"
          wait_gone "$pid" || true
        fi
        rm -f "$DIR/n$3/beam.pid"
        ;;
      start-node)
        require_ejabberd
        cmd_start_node "$3"
        ;;
    esac
    ;;
  status)
    [ $# -eq 2 ] || usage
    load_state || die "no cluster in $DIR"
    require_ejabberd
    cmd_status
    ;;
  *) usage ;;
esac
