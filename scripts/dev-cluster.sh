#!/usr/bin/env bash
# A single-node Kubernetes cluster on this machine, for tests and for trying connlat (deploy/README.md).
#
#   sudo scripts/dev-cluster.sh up      start it; prints KUBECONFIG= KUBECTL= NODE_NAME= HOST_IP= STATE_DIR= on stdout
#   sudo scripts/dev-cluster.sh down    stop everything and remove all state (exit 0 when already down)
#   sudo scripts/dev-cluster.sh status  say what runs (exit 0 when up, 3 when down)
#   scripts/dev-cluster.sh check        exit 1 with one line naming what this machine lacks (root, a package, a build)
#
# The node runs in its own network and mount namespaces, held by one process: etcd, the control plane,
# containerd, the kubelet and kube-proxy live there, so the pod and Service networks, the bridge, iptables
# chains, net.* sysctls and container mounts vanish with it. A veth pair links it to the machine: HOST_IP on the
# machine's side (pods reach it; test backends listen there), NODE_IP on the node's (the API server, the kubelet).
# Every process is in one cgroup (or the kubelet's kubepods cgroups), which is how `down` finds them all.
# Configuration files: deploy/dev-cluster/. Environment: CONNLAT_DEV_CLUSTER_DIR (state dir),
# CONNLAT_DEV_CLUSTER_LINK (the /30 of the veth pair), CONNLAT_CACHE (built binaries and images).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config_dir="$repo_root/deploy/dev-cluster"

state_dir="${CONNLAT_DEV_CLUSTER_DIR:-/run/connlat-dev-cluster}"
link="${CONNLAT_DEV_CLUSTER_LINK:-10.222.0.0/30}"
node_name=connlat-dev
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
api_service_ip=10.96.0.1
dns_service_ip=10.96.0.10
host_if=connlat-dev0                        # the machine's end of the veth pair; the node's end is its eth0
cgroup=/sys/fs/cgroup/pids/connlat-dev-cluster
# Paths the kubelet and containerd use whatever their config says; inside the node's mount namespace each one is
# a bind mount of a folder under the state dir, so nothing they write there lands on the machine.
node_dirs=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd)
# Machine-wide sysctls the kubelet sets (setupKernelTunables); shadowed by files inside the node's mount namespace.
shadowed_sysctls=(kernel/panic kernel/panic_on_oops vm/overcommit_memory vm/panic_on_oom kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

say() { printf 'dev-cluster: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }
started=$SECONDS
elapsed() { printf '%ss' "$((SECONDS - started))"; }

base=${link%/*}
[[ $link == */30 && $base =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.([0-9]+)$ && $((BASH_REMATCH[2] % 4)) == 0 ]] ||
  fail "CONNLAT_DEV_CLUSTER_LINK='$link' is not an aligned IPv4 /30 (e.g. 10.222.0.0/30)"
host_ip="${BASH_REMATCH[1]}.$((BASH_REMATCH[2] + 1))"
node_ip="${BASH_REMATCH[1]}.$((BASH_REMATCH[2] + 2))"
api_url="https://$node_ip:6443"
logs="$state_dir/logs"

holder_pid() { local pid; pid=$(cat "$state_dir/holder.pid" 2>/dev/null) && [[ -d /proc/$pid ]] && echo "$pid"; }
# in_node CMD...: runs CMD inside the node's network and mount namespaces.
in_node() { nsenter --target "$holder" --net --mount -- "$@"; }
# start NAME CMD...: a daemon in the node's namespaces and cgroup, logging to logs/NAME.log.
start() {
  local name=$1; shift
  # A plain command in the background: $! is nsenter's pid, which sh and setsid exec into the daemon.
  nsenter --target "$holder" --net --mount -- sh -c 'echo $$ >"$0/cgroup.procs" && exec setsid "$@"' "$cgroup" "$@" \
    >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state_dir/pids/$name"
}
alive() { local pid; pid=$(cat "$state_dir/pids/$1" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }
# wait_for WHAT TIMEOUT_S DAEMON CMD...: polls CMD until it succeeds; fails early with DAEMON's log if it died.
wait_for() {
  local what=$1 timeout=$2 daemon=$3 deadline=$((SECONDS + $2)); shift 3
  until "$@" >/dev/null 2>&1; do
    if [[ -n $daemon ]] && ! alive "$daemon"; then
      fail "$daemon exited while starting: $(grep -v '^\s*$' "$logs/$daemon.log" | tail -n 1) (log: $logs/$daemon.log)"
    fi
    ((SECONDS < deadline)) || fail "$what not ready after ${timeout}s (logs: $logs)"
    sleep 0.2
  done
}
kubectl() { "$kube_bin/kubectl" --kubeconfig "$state_dir/admin.kubeconfig" "$@"; }
render() { sed -e "s|@STATE_DIR@|$state_dir|g" -e "s|@NODE_IP@|$node_ip|g" -e "s|@NODE_NAME@|$node_name|g" \
  -e "s|@POD_CIDR@|$pod_cidr|g" -e "s|@PAUSE_IMAGE@|$pause_image|g" -e "s|@DNS_SERVICE_IP@|$dns_service_ip|g" \
  "$config_dir/$1" >"$2"; }
# CoreDNS's /ready, asked inside the node (bash's /dev/tcp: no HTTP client needed).
dns_ready() { in_node bash -c 'exec 3<>/dev/tcp/127.0.0.1/8181 && printf "GET /ready HTTP/1.0\r\n\r\n" >&3 && grep -q "^HTTP/1\.[01] 200" <&3'; }

# Every process of the node: the daemons' cgroup and the pods' cgroups, in any hierarchy.
pod_pids() { find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u; }
node_pids() { { cat "$cgroup/cgroup.procs" 2>/dev/null; pod_pids; } | sort -u; }
in_own_netns() { [[ $(readlink "/proc/$holder/ns/net") != "$(readlink /proc/self/ns/net)" ]]; }
is_up() { [[ -d $state_dir || -d $cgroup || -e /sys/class/net/$host_if ]] || compgen -G '/sys/fs/cgroup/*/kubepods' >/dev/null; }

down() {
  local deadline
  if ! is_up; then say "already down"; return 0; fi
  # Nothing of the node is kept, so nothing needs a graceful stop: SIGKILL the kubelet (it would restart
  # containers), the pods' processes (their shims reap them), then every daemon and shim, until the cgroups are empty.
  kill -KILL "$(cat "$state_dir/pids/kubelet" 2>/dev/null)" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while [[ -n $(pod_pids) ]]; do
    kill -KILL $(pod_pids) 2>/dev/null || true; sleep 0.05
    ((SECONDS < deadline)) || fail "pod processes survive SIGKILL: $(pod_pids | tr '\n' ' ')"
  done
  while [[ -n $(node_pids) ]]; do
    kill -KILL $(node_pids) 2>/dev/null || true; sleep 0.05
    ((SECONDS < deadline)) || fail "processes of the node survive SIGKILL: $(node_pids | tr '\n' ' ')"
  done
  # With its last process gone the node's namespaces are freed; the kernel deletes the veth pair with them.
  deadline=$((SECONDS + 10))
  while [[ -e /sys/class/net/$host_if ]] && ((SECONDS < deadline)); do sleep 0.1; done
  [[ ! -e /sys/class/net/$host_if ]] || ip link delete "$host_if" 2>/dev/null || true
  for dir in $(find /sys/fs/cgroup/*/kubepods -depth -type d 2>/dev/null) "$cgroup"; do
    [[ ! -d $dir ]] || rmdir "$dir" || fail "cannot remove cgroup $dir"
  done
  if [[ -f $state_dir/created-dirs ]]; then
    tac "$state_dir/created-dirs" | while read -r dir; do rmdir "$dir" 2>/dev/null || say "left $dir (not empty)"; done
  fi
  rm -rf "$state_dir"
  say "down in $(elapsed)"
}

# A failed `up` removes what it started, keeping only the daemons' logs (in /tmp) for the reason.
failed_up() {
  local kept
  if [[ -d $logs ]] && kept=$(mktemp -d /tmp/connlat-dev-cluster-logs.XXXXXX); then
    cp -a "$logs/." "$kept/" && say "start failed; logs kept in $kept; cleaning up"
  else
    say "start failed; cleaning up"
  fi
  down >/dev/null 2>&1 || true
}

status() {
  if ! is_up; then echo "down"; return 3; fi
  holder=$(holder_pid) || { echo "broken: state left over without a running node ($state_dir); run: $0 down"; return 1; }
  for d in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns; do
    if alive "$d"; then echo "$d running (pid $(cat "$state_dir/pids/$d"))"; else echo "$d NOT running"; fi
  done
  echo "KUBECONFIG=$state_dir/admin.kubeconfig"
}

# What this machine must have; `check` prints the first thing missing (tests skip with it).
requirements() {
  [[ $(id -u) == 0 ]] || fail "must run as root (it makes namespaces, cgroups and mounts, and runs the kubelet): sudo $0 up"
  local missing=() spec
  for spec in containerd:/usr/bin/containerd containerd:/usr/bin/ctr runc:/usr/sbin/runc \
    containernetworking-plugins:/usr/lib/cni/bridge containernetworking-plugins:/usr/lib/cni/host-local \
    containernetworking-plugins:/usr/lib/cni/portmap containernetworking-plugins:/usr/lib/cni/loopback \
    iptables:/usr/sbin/iptables iproute2:/usr/sbin/ip util-linux:/usr/bin/nsenter util-linux:/usr/bin/unshare \
    openssl:/usr/bin/openssl buildah:/usr/bin/buildah catatonit:/usr/bin/catatonit busybox-static:/bin/busybox; do
    [[ -x ${spec#*:} ]] || missing+=("${spec%%:*} (${spec#*:})")
  done
  ((${#missing[@]} == 0)) || fail "missing Debian packages: ${missing[*]}; install them (scripts/setup.sh does)"
  [[ -d /sys/fs/cgroup/pids ]] || fail "no cgroup v1 pids hierarchy at /sys/fs/cgroup/pids (this script supports the hybrid cgroup layout of this machine)"
  local kube_paths
  kube_paths=$("$repo_root/scripts/build-kube.sh" --check 2>/dev/null) ||
    fail "Kubernetes binaries not built: run scripts/build-kube.sh"
  kube_bin=$(dirname "$(grep -m1 '^kubelet=' <<<"$kube_paths" | cut -d= -f2)")
  coredns=$("$repo_root/scripts/build-coredns.sh" --check 2>/dev/null) || fail "CoreDNS not built: run scripts/build-coredns.sh"
  coredns=${coredns#coredns=}
}

preflight() {
  requirements
  if holder=$(holder_pid); then fail "already up (state in $state_dir, node pid $holder): KUBECONFIG=$state_dir/admin.kubeconfig; '$0 down' stops it"; fi
  is_up && fail "another up is starting, or an earlier node's state is left over ($state_dir, cgroups or $host_if): wait, or run '$0 down'"
  # All listeners are inside the node's own network namespace, so no port of the machine can be taken; what
  # can collide is the veth pair's addresses.
  local owner
  for ip in "$host_ip" "$node_ip"; do
    owner=$(ip -o -4 addr show to "$ip/32" | awk '{ print $2; exit }')
    [[ -z $owner ]] || fail "address $ip (of CONNLAT_DEV_CLUSTER_LINK=$link) is taken by $owner on this machine; set CONNLAT_DEV_CLUSTER_LINK to a free /30"
  done
  if ip -o -4 route show to match "$host_ip" | grep -qv '^default'; then
    fail "CONNLAT_DEV_CLUSTER_LINK=$link overlaps a route of this machine ($(ip -o -4 route show to match "$host_ip" | grep -v '^default' | head -n1)); set it to a free /30"
  fi
}

up() {
  preflight
  # The claim: mkdir is atomic, so of two concurrent `up`s one fails here, before it could clean up the other's.
  mkdir "$cgroup" 2>/dev/null || fail "another 'dev-cluster.sh up' is starting a cluster ($cgroup exists)"
  trap 'status=$?; if ((status != 0)); then failed_up; fi' EXIT
  trap 'exit 130' INT TERM
  source "$repo_root/scripts/dev-cluster/pki.sh"
  source "$repo_root/scripts/dev-cluster/images.sh"
  mkdir -p "$state_dir" "$logs" "$state_dir/pids" "$state_dir/sysctl" "$state_dir/containerd" "$state_dir/cni/net.d"
  chmod 700 "$state_dir"

  say "node namespaces ($(elapsed))"
  # The holder: a process in new network and mount namespaces (private propagation: nothing mounted inside
  # reaches the machine). Its end, with every other process of the node, frees both.
  sh -c 'echo $$ >"$0/cgroup.procs" && echo $$ >"$1" && exec unshare --net --mount --propagation private sleep infinity' \
    "$cgroup" "$state_dir/holder.pid" </dev/null >/dev/null 2>&1 &
  wait_for "node namespaces" 5 "" test -s "$state_dir/holder.pid"
  holder=$(cat "$state_dir/holder.pid")
  wait_for "node namespaces" 5 "" in_own_netns
  ip link add "$host_if" type veth peer name eth0 netns "$holder"
  sysctl -qw "net.ipv6.conf.$host_if.disable_ipv6=1"   # per-interface; only IPv4 crosses the link
  ip addr add "$host_ip/30" dev "$host_if"
  ip link set "$host_if" up
  # ip_forward: pods reach the machine through the node. bridge-nf-call-iptables: kube-proxy's DNAT sees
  # pod-to-pod traffic on the bridge. Both are per network namespace.
  # No default route: nothing in the node can send to any address but the machine's end of the link. The Service
  # network gets a route only so that a connect from the node itself reaches kube-proxy's OUTPUT DNAT.
  in_node sh -c "ip link set lo up && ip addr add $node_ip/30 dev eth0 && ip link set eth0 up &&
    ip route add $service_cidr dev eth0 &&
    sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.ipv6.conf.all.disable_ipv6=1"
  local dir sysctl
  for dir in "${node_dirs[@]}"; do
    [[ -e $dir ]] || { mkdir -p "$dir" && echo "$dir" >>"$state_dir/created-dirs"; }
    mkdir -p "$state_dir/mnt$dir"
    in_node mount --bind "$state_dir/mnt$dir" "$dir"
  done
  for sysctl in "${shadowed_sysctls[@]}"; do
    cat "/proc/sys/$sysctl" >"$state_dir/sysctl/${sysctl//\//.}"
    in_node mount --bind "$state_dir/sysctl/${sysctl//\//.}" "/proc/sys/$sysctl"
  done
  # Shared inside the node (the kubelet and containerd propagate volume mounts), still private to the machine.
  in_node mount --make-rshared /

  say "certificates, configuration and local images ($(elapsed))"
  make_pki
  local images
  images=$(local_images)
  render containerd.toml "$state_dir/containerd/config.toml"
  render cni.conflist "$state_dir/cni/net.d/10-connlat-dev.conflist"
  render kubelet.yaml "$state_dir/kubelet.yaml"
  render kube-proxy.yaml "$state_dir/kube-proxy.yaml"
  render Corefile "$state_dir/Corefile"
  render cluster-dns.yaml "$state_dir/cluster-dns.yaml"

  say "etcd, kube-apiserver, containerd ($(elapsed))"
  start etcd "$kube_bin/etcd" --name=connlat-dev --data-dir="$state_dir/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=connlat-dev=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn
  start kube-apiserver "$kube_bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --advertise-address="$node_ip" --secure-port=6443 --service-cluster-ip-range="$service_cidr" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true --cert-dir="$pki/apiserver-generated"
  start containerd /usr/bin/containerd --config "$state_dir/containerd/config.toml"
  local sock="$state_dir/containerd/containerd.sock" line
  wait_for containerd 30 containerd ctr --address "$sock" version
  while IFS= read -r line; do
    ctr --address "$sock" -n k8s.io images import "${line#*=}" >/dev/null
  done <<<"$images"
  wait_for kube-apiserver 120 kube-apiserver kubectl get --raw /readyz

  say "controller-manager, scheduler, kubelet, kube-proxy ($(elapsed))"
  start kube-controller-manager "$kube_bin/kube-controller-manager" --kubeconfig="$state_dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
  start kube-scheduler "$kube_bin/kube-scheduler" --kubeconfig="$state_dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
  start kubelet "$kube_bin/kubelet" --config="$state_dir/kubelet.yaml" --kubeconfig="$state_dir/kubelet.kubeconfig" \
    --hostname-override="$node_name" --node-ip="$node_ip"
  start kube-proxy "$kube_bin/kube-proxy" --config="$state_dir/kube-proxy.yaml"
  kubectl apply -f "$state_dir/cluster-dns.yaml" >/dev/null
  start coredns "$coredns" -conf "$state_dir/Corefile"

  if [[ -x $repo_root/scripts/build-images.sh ]]; then
    say "scripts/build-images.sh ($(elapsed))"
    local built
    built=$("$repo_root/scripts/build-images.sh") || fail "scripts/build-images.sh failed; see its messages above"
    while IFS= read -r line; do
      [[ $line == *=/* ]] || continue
      ctr --address "$sock" -n k8s.io images import "${line#*=}" >/dev/null || fail "cannot import ${line#*=} into containerd"
      say "imported ${line%%=*}"
    done <<<"$built"
  else
    say "scripts/build-images.sh does not exist yet: connlat's images not imported"
  fi

  wait_for "node $node_name Ready" 120 kubelet \
    sh -c "[ \"\$(\"$kube_bin/kubectl\" --kubeconfig \"$state_dir/admin.kubeconfig\" get node $node_name -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
  say "node Ready ($(elapsed))"
  wait_for "ServiceAccounts" 60 kube-controller-manager kubectl get serviceaccount default -n default
  wait_for "ServiceAccounts" 60 kube-controller-manager kubectl get serviceaccount default -n kube-system
  wait_for "CoreDNS" 60 coredns dns_ready
  for d in kube-scheduler kube-proxy; do alive "$d" || fail "$d exited: $(tail -n 1 "$logs/$d.log") (log: $logs/$d.log)"; done
  say "up in $(elapsed)"
  trap - EXIT
  printf '%s\n' "KUBECONFIG=$state_dir/admin.kubeconfig" "KUBECTL=$kube_bin/kubectl" "NODE_NAME=$node_name" \
    "HOST_IP=$host_ip" "STATE_DIR=$state_dir"
}

case "${1:-}" in
  up) up ;;
  down) [[ $(id -u) == 0 ]] || fail "must run as root: sudo $0 down"; down ;;
  status) status ;;
  check) requirements ;;
  *) echo "usage: $0 up|down|status|check" >&2; exit 2 ;;
esac
