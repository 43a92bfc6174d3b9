#!/usr/bin/env bash
# Several "nodes" on one Linux machine, for running and testing multi-node jobs without a cluster:
# each node is a network namespace with its own hostname (a UTS namespace) and one veth link to a
# switch (a bridge in a namespace of its own), so that Open MPI and Slurm see separate hosts that
# talk over TCP. Files, the process table and the cores stay shared, as on nodes with a shared
# file system.
# Run as root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Idempotent.
#
#   local-nodes.sh start N            nodes tsn1..tsnN (hostnames = names), tsnI at 10.77.0.I/24 on
#                                     its eth0; nodes from an earlier, larger start are removed
#   local-nodes.sh stop               SIGKILL every process in the nodes, remove the namespaces, the
#                                     links (they live only in the namespaces) and the hostname mounts
#   local-nodes.sh status             nodes, addresses, link states, process counts (exit 1: none)
#   local-nodes.sh exec NODE CMD...   run CMD in NODE (its network and hostname); NODE is a name or
#                                     an address
#   local-nodes.sh rsh NODE WORDS...  as a remote shell does: WORDS joined by spaces and run by sh -c
#                                     in NODE. This is mpirun's plm_rsh_agent (there is no ssh)
#   local-nodes.sh mpirun ARGS...     mpirun started in the first node over every node (hostfile,
#                                     TCP only, on the nodes' subnet; see mpirun_options below)
#   local-nodes.sh hostfile [SLOTS]   the path of an Open MPI hostfile of the nodes (SLOTS each, 1)
#   local-nodes.sh names | address NODE | pids NODE
#   local-nodes.sh kill NODE          SIGKILL every process in NODE (a node that dies)
#   local-nodes.sh link NODE up|down  connect or cut NODE's cable (the switch side of its veth)
#
# How the hostname is kept: a UTS namespace lives as long as a process is in it or a file is bound
# to it. `unshare --uts=FILE hostname NAME` creates one, binds it to FILE (under $LOCAL_NODES_DIR)
# and names it; `nsenter --uts=FILE` enters it later, as `ip netns exec` enters the network
# namespace bound to /run/netns/NAME. `stop` unmounts FILE after killing the node's processes.
#
# TCP in the nodes: tcp_retries2 is lowered to $LOCAL_NODES_TCP_RETRIES (default 5: a connection
# with unacknowledged data is declared dead after ~13 s instead of ~15 min), so that mpirun and its
# daemons notice a cut link and end the job instead of waiting on it.
#
# Environment: LOCAL_NODES_PREFIX (node names, tsn), LOCAL_NODES_NET (first three bytes of the
# /24, 10.77.0), LOCAL_NODES_DIR (hostname files, hostfile; /run/textscale-nodes),
# LOCAL_NODES_TCP_RETRIES (5).
set -euo pipefail
prefix=${LOCAL_NODES_PREFIX:-tsn}
net=${LOCAL_NODES_NET:-10.77.0}
dir=${LOCAL_NODES_DIR:-/run/textscale-nodes}
retries=${LOCAL_NODES_TCP_RETRIES:-5}
switch=$prefix-switch
bridge=br0
self=$(readlink -f "${BASH_SOURCE[0]}")

say() { echo "[local-nodes] $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# The nodes that exist now, in order: tsn1 tsn2 ...
names() { ip netns list 2> /dev/null | awk '{print $1}' | grep -E "^${prefix}[0-9]+$" | sort -V || true; }
# node_of NAME|ADDRESS: the node's name
node_of() {
  local node=$1
  [[ $node == "$net".* ]] && node=$prefix${node##*.}
  node=${node%%.*} # a fully qualified name
  [ -e "/run/netns/$node" ] || die "no node '$1' (local-nodes.sh start N creates them)"
  echo "$node"
}
uts_file() { echo "$dir/$1.uts"; }

# pids NODE: every process in NODE's network or UTS namespace
pids() {
  local node=$1 uts_id
  [ -e "/run/netns/$node" ] || return 0
  {
    ip netns pids "$node" 2> /dev/null || true
    if uts_id=$(stat -L -c %i "$(uts_file "$node")" 2> /dev/null); then
      find /proc/[0-9]*/ns/uts -maxdepth 0 -lname "uts:\\[$uts_id\\]" 2> /dev/null | cut -d/ -f3
    fi
  } | sort -un
}

# kill_node NODE: SIGKILL its processes until none is left (a process may fork meanwhile)
kill_node() {
  local node=$1 left
  for _ in $(seq 100); do
    left=$(pids "$node" | grep -vx "$$" || true)
    [ -z "$left" ] && return 0
    # shellcheck disable=SC2086
    kill -KILL $left 2> /dev/null || true
    sleep 0.05
  done
  die "processes left in $node: $(pids "$node" | tr '\n' ' ')"
}

remove_node() {
  local node=$1 uts
  uts=$(uts_file "$node")
  kill_node "$node"
  ip netns delete "$node" 2> /dev/null || true
  if findmnt -n "$uts" > /dev/null 2>&1; then umount "$uts"; fi
  rm -f "$uts"
}

add_node() {
  local i=$1 node=$prefix$1 uts
  uts=$(uts_file "$node")
  [ -e "/run/netns/$node" ] || ip netns add "$node"
  if ! findmnt -n "$uts" > /dev/null 2>&1; then
    : > "$uts"
    unshare --uts="$uts" hostname "$node"
  fi
  if ! ip -n "$switch" link show "$node" > /dev/null 2>&1; then
    ip -n "$node" link delete eth0 2> /dev/null || true
    ip link add "$node" netns "$switch" type veth peer name eth0 netns "$node"
    ip -n "$switch" link set "$node" master $bridge
  fi
  ip -n "$node" addr replace "$net.$i/24" dev eth0
  ip -n "$node" link set lo up
  ip -n "$node" link set eth0 up
  ip -n "$switch" link set "$node" up
  ip netns exec "$node" sysctl -q -w net.ipv4.tcp_retries2="$retries"
}

# reachable NODE ADDRESS: a TCP connection from NODE to a closed port of ADDRESS is refused (an
# answer: the address is there), rather than timing out (no ping needed)
reachable() {
  local answer
  answer=$(ip netns exec "$1" timeout 2 bash -c "exec 3<> /dev/tcp/$2/9" 2>&1) && return 0
  [[ $answer == *refused* ]]
}

start() {
  local n=$1 node i
  [[ $n =~ ^[1-9][0-9]?$ ]] && [ "$n" -le 200 ] || die "start N: N must be 1..200, not '$n'"
  [ "$(id -u)" = 0 ] || die "run as root (namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
  mkdir -p "$dir"
  [ -e "/run/netns/$switch" ] || ip netns add "$switch"
  ip -n "$switch" link show $bridge > /dev/null 2>&1 || ip -n "$switch" link add $bridge type bridge
  ip -n "$switch" link set $bridge up
  for node in $(names); do
    if [ "${node#"$prefix"}" -gt "$n" ]; then remove_node "$node"; fi
  done
  for ((i = 1; i <= n; i++)); do add_node "$i"; done
  for ((i = 1; i <= n; i++)); do echo "$prefix$i slots=1"; done > "$dir/hostfile"
  # The first node reaches every other one before we say so.
  for ((i = 2; i <= n; i++)); do
    for _ in $(seq 50); do
      reachable "${prefix}1" "$net.$i" && break
      sleep 0.1
    done
    reachable "${prefix}1" "$net.$i" || die "${prefix}1 cannot reach $net.$i"
  done
  say "ready: $n nodes ($(names | paste -sd " ")) on $net.0/24; hostfile $dir/hostfile"
}

stop() {
  local node
  for node in $(names); do remove_node "$node"; done
  if [ -e "/run/netns/$switch" ]; then
    kill_node "$switch"
    ip netns delete "$switch"
  fi
  rm -f "$dir/hostfile"
  rmdir "$dir" 2> /dev/null || true
}

status() {
  local node any=1
  for node in $(names); do
    any=0
    printf '%s: hostname %s, %s, link %s, %s processes\n' "$node" \
      "$(nsenter --uts="$(uts_file "$node")" hostname 2> /dev/null || echo '?')" \
      "$(ip -n "$node" -br -4 addr show eth0 2> /dev/null | awk '{print $3}')" \
      "$(ip -n "$switch" -br link show "$node" 2> /dev/null | awk '{print $2}')" "$(pids "$node" | wc -l)"
  done
  return $any
}

# exec_in NODE CMD...: CMD in NODE's network and UTS namespaces
exec_in() {
  local node
  node=$(node_of "$1")
  shift
  exec nsenter --net="/run/netns/$node" --uts="$(uts_file "$node")" -- "$@"
}

# The options that make mpirun run over the nodes: launched through `rsh` (no tree spawn: every
# daemon is started from the first node), the MPI traffic on the TCP BTL only (no shared memory:
# vader is left out) over the nodes' subnet, the runtime's own traffic on that subnet too, with
# keepalives so that a silent peer is noticed in ~11 s.
mpirun_options() {
  local subnet=$net.0/24
  printf '%s\n' --hostfile "$dir/hostfile" --mca plm_rsh_agent "$self rsh" --mca plm_rsh_no_tree_spawn 1 \
    --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
    --mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3
}

action=${1:-}
shift || true
case $action in
  start) start "${1:?usage: local-nodes.sh start N}" ;;
  stop) stop ;;
  status) status ;;
  names) names ;;
  address)
    node=$(node_of "${1:?usage: local-nodes.sh address NODE}")
    echo "$net.${node#"$prefix"}"
    ;;
  pids) pids "$(node_of "${1:?usage: local-nodes.sh pids NODE}")" ;;
  kill) kill_node "$(node_of "${1:?usage: local-nodes.sh kill NODE}")" ;;
  link)
    node=$(node_of "${1:?usage: local-nodes.sh link NODE up|down}")
    case ${2:-} in up | down) ip -n "$switch" link set "$node" "$2" ;; *) die "link NODE up|down" ;; esac
    ;;
  exec)
    [ $# -ge 2 ] || die "usage: local-nodes.sh exec NODE CMD..."
    exec_in "$@"
    ;;
  rsh)
    # A remote shell's options (ssh -x, -T, ...) come before the host: skip them.
    while [[ ${1:-} == -* ]]; do shift; done
    [ $# -ge 2 ] || die "usage: local-nodes.sh rsh NODE WORDS..."
    node=$1
    shift
    exec_in "$node" /bin/sh -c "$*"
    ;;
  hostfile)
    [ -f "$dir/hostfile" ] || die "no nodes (local-nodes.sh start N)"
    if [ -n "${1:-}" ]; then
      names | sed "s/\$/ slots=$1/" > "$dir/hostfile"
    fi
    echo "$dir/hostfile"
    ;;
  mpirun)
    [ -f "$dir/hostfile" ] || die "no nodes (local-nodes.sh start N)"
    mapfile -t options < <(mpirun_options)
    export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
    exec_in "$(names | head -n 1)" mpirun "${options[@]}" "$@"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
