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

{{/* The gateway config as a ConfigMap data map. */}}
{{- define "connlat.gatewayConfigData" -}}
{{- dict "gateway.yaml" (.Files.Get "files/gateway.yaml") "k8s-attributes.yaml" (.Files.Get "files/k8s-attributes.yaml") | toYaml }}
{{- end }}

{{/* ConfigMap name with the same content-hash suffix kustomize's configMapGenerator appends: sha256 of the JSON
{"data":...,"kind":"ConfigMap","name":""}, first 10 hex digits with 0,1,3,a,e mapped to g,h,k,m,t. The name is
empty because kustomize's hasher looks the name up as the single key "metadata/name", which never exists (api
v0.21 hasher.go); test/deploy/render.test.ts keeps the two in step. A config change rolls the gateway under both. */}}
{{- define "connlat.gatewayConfigName" -}}
{{- $data := dict "gateway.yaml" (.Files.Get "files/gateway.yaml") "k8s-attributes.yaml" (.Files.Get "files/k8s-attributes.yaml") -}}
{{- $hash := dict "kind" "ConfigMap" "name" "" "data" $data | toJson | sha256sum | trunc 10 -}}
connlat-gateway-config-{{ $hash | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" }}
{{- end }}
