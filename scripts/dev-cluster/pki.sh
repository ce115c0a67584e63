# Sourced by scripts/dev-cluster.sh: the node's certificates and kubeconfigs, made with the openssl CLI.
# EC P-256 keys (milliseconds each); valid 30 days; one CA signs everything (a dev cluster, not a production PKI).

# issue NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
issue_cert() {
  local name=$1 subject=$2 usage=$3 sans=${4:-}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
  {
    echo 'basicConstraints=critical,CA:FALSE'
    echo 'keyUsage=critical,digitalSignature,keyEncipherment'
    echo "extendedKeyUsage=$usage"
    [[ -z $sans ]] || echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 30 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# kubeconfig FILE USER_CERT_NAME: a kubeconfig for the API server at $api_url authenticating with pki/NAME.{crt,key}.
write_kubeconfig() {
  local file=$1 name=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: connlat-dev
  cluster:
    server: $api_url
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$pki/$name.crt")
    client-key-data: $(base64 -w0 "$pki/$name.key")
contexts:
- name: connlat-dev
  context: { cluster: connlat-dev, user: $name }
current-context: connlat-dev
EOF
  chmod 600 "$file"
}

make_pki() {
  pki="$state_dir/pki"
  mkdir -p "$pki" && chmod 700 "$pki"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj /CN=connlat-dev-ca -days 30 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$pki/ca.crt" 2>/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  issue_cert apiserver /CN=kube-apiserver serverAuth \
    "IP:$node_ip,IP:$api_service_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue_cert kubelet "/CN=$node_name" serverAuth "IP:$node_ip,DNS:$node_name"
  # O= is the Kubernetes group. system:masters: the bootstrap superuser group (admin, and the API server's
  # client identity toward the kubelet); the others get the bindings Kubernetes bootstraps for these names.
  issue_cert admin /O=system:masters/CN=connlat-dev-admin clientAuth
  issue_cert apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client clientAuth
  issue_cert controller-manager /CN=system:kube-controller-manager clientAuth
  issue_cert scheduler /CN=system:kube-scheduler clientAuth
  issue_cert kube-proxy /CN=system:kube-proxy clientAuth
  issue_cert node "/O=system:nodes/CN=system:node:$node_name" clientAuth
  issue_cert coredns /CN=system:coredns clientAuth

  write_kubeconfig "$state_dir/admin.kubeconfig" admin
  write_kubeconfig "$state_dir/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$state_dir/scheduler.kubeconfig" scheduler
  write_kubeconfig "$state_dir/kube-proxy.kubeconfig" kube-proxy
  write_kubeconfig "$state_dir/kubelet.kubeconfig" node
  write_kubeconfig "$state_dir/coredns.kubeconfig" coredns
}
