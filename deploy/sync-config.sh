#!/usr/bin/env bash
# Copies the two files the manifests embed but do not own into the places kustomize and Helm can load them from
# (kustomize loads nothing outside its folder; Helm's .Files sees only the chart):
#   otel-config/{gateway,k8s-attributes}.yaml -> deploy/kustomize/base/otel-config/
#                                             -> deploy/helm/connlat/files/
#   otel-config/{mimir-remote-write,vendor-apm,debug}.yaml -> deploy/helm/connlat/files/ (Helm gateway.overlays)
#   deploy/kustomize/base/agent-rbac.yaml   -> deploy/helm/connlat/files/agent-rbac.yaml
# test/deploy/render.test.ts fails when a copy differs from its source. Run this after editing either source.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
copy() { mkdir -p "$(dirname "$2")"; cp "$1" "$2"; echo "sync-config: $1 -> $2"; }
for f in gateway.yaml k8s-attributes.yaml; do
  copy "$root/otel-config/$f" "$root/deploy/kustomize/base/otel-config/$f"
  copy "$root/otel-config/$f" "$root/deploy/helm/connlat/files/$f"
done
# The overlays the chart's gateway.overlays may select (kustomize users add theirs in their own overlay).
for f in mimir-remote-write.yaml vendor-apm.yaml debug.yaml; do
  copy "$root/otel-config/$f" "$root/deploy/helm/connlat/files/$f"
done
copy "$root/deploy/kustomize/base/agent-rbac.yaml" "$root/deploy/helm/connlat/files/agent-rbac.yaml"
