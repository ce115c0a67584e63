{{/* Labels shared by every object; kept identical to deploy/kustomize/base (no helm.sh/chart label) so both
renderings stay comparable object for object. */}}
{{- define "connlat.labels" -}}
app.kubernetes.io/name: connlat
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: connlat
{{- end }}

{{- define "connlat.selector" -}}
app.kubernetes.io/name: connlat
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Overlays of otel-config/ the chart ships (files/<name>.yaml, copied by deploy/sync-config.sh) that
gateway.overlays may name; anything else fails the render with the list. */}}
{{- define "connlat.gatewayOverlayNames" -}}
mimir-remote-write vendor-apm debug
{{- end }}

{{/* The gateway config files as a JSON map (exact round trip, unlike YAML): gateway.yaml, k8s-attributes.yaml, then
each selected overlay. */}}
{{- define "connlat.gatewayConfigFiles" -}}
{{- $data := dict "gateway.yaml" (.Files.Get "files/gateway.yaml") "k8s-attributes.yaml" (.Files.Get "files/k8s-attributes.yaml") -}}
{{- $known := splitList " " (include "connlat.gatewayOverlayNames" .) -}}
{{- range .Values.gateway.overlays -}}
{{- if not (has . $known) -}}
{{- fail (printf "gateway.overlays: %q is not an overlay this chart ships (%s)" . (join ", " $known)) -}}
{{- end -}}
{{- $_ := set $data (printf "%s.yaml" .) ($.Files.Get (printf "files/%s.yaml" .)) -}}
{{- end -}}
{{- toJson $data -}}
{{- end }}

{{/* The gateway config as a ConfigMap data map. */}}
{{- define "connlat.gatewayConfigData" -}}
{{- include "connlat.gatewayConfigFiles" . | fromJson | toYaml }}
{{- end }}

{{/* ConfigMap name with the same content-hash suffix kustomize's configMapGenerator appends: sha256 of the JSON
{"data":...,"kind":"ConfigMap","name":""}, first 10 hex digits with 0,1,3,a,e mapped to g,h,k,m,t. The name is
empty because kustomize's hasher looks the name up as the single key "metadata/name", which never exists (api
v0.21 hasher.go); test/deploy/render.test.ts keeps the two in step. A config change rolls the gateway under both. */}}
{{- define "connlat.gatewayConfigName" -}}
{{- $data := include "connlat.gatewayConfigFiles" . | fromJson -}}
{{- $hash := dict "kind" "ConfigMap" "name" "" "data" $data | toJson | sha256sum | trunc 10 -}}
connlat-gateway-config-{{ $hash | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" }}
{{- end }}
