{{- /*
Names. The webhook configurations' names are fixed by the binaries
(kthena-workload-*, kthena-networking-*), so there is one installation of
each plane per cluster; the namespaced objects have fixed names too, which
the binaries' defaults (Secrets, Services) also use.
*/ -}}

{{- define "kthena.controllerManager.name" -}}kthena-controller-manager{{- end }}
{{- define "kthena.controllerManager.webhookService" -}}kthena-controller-manager-webhook{{- end }}
{{- define "kthena.controllerManager.metricsService" -}}kthena-controller-manager-metrics{{- end }}
{{- define "kthena.controllerManager.certSecret" -}}
{{- if eq .Values.certificates.mode "certManager" }}kthena-controller-manager-webhook-tls{{ else }}kthena-controller-manager-webhook-certs{{ end }}
{{- end }}
{{- define "kthena.controllerManager.serviceAccount" -}}
{{- default "kthena-controller-manager" .Values.workload.controllerManager.serviceAccount.name }}
{{- end }}

{{- define "kthena.router.name" -}}kthena-router{{- end }}
{{- define "kthena.router.webhookService" -}}kthena-router-webhook{{- end }}
{{- define "kthena.router.configMap" -}}kthena-router-config{{- end }}
{{- define "kthena.router.certSecret" -}}
{{- if eq .Values.certificates.mode "certManager" }}kthena-router-webhook-tls{{ else }}kthena-router-webhook-certs{{ end }}
{{- end }}
{{- define "kthena.router.serviceAccount" -}}
{{- default "kthena-router" .Values.networking.router.serviceAccount.name }}
{{- end }}

{{- /* Labels of every object; component names the plane's binary. */ -}}
{{- define "kthena.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: kthena
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kthena
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .root.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- /* Selector labels of a component's pods. */ -}}
{{- define "kthena.selectorLabels" -}}
app.kubernetes.io/name: kthena
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* Image reference: registry/repository:tag or @digest. Context: dict root, image. */ -}}
{{- define "kthena.image" -}}
{{- $repo := .image.repository -}}
{{- $first := first (splitList "/" $repo) -}}
{{- if and .root.Values.global.imageRegistry (not (or (contains "." $first) (contains ":" $first) (eq $first "localhost"))) -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.global.imageRegistry) $repo -}}
{{- end -}}
{{- if .image.digest -}}
{{ $repo }}@{{ .image.digest }}
{{- else -}}
{{ $repo }}:{{ .image.tag | default .root.Values.global.imageTag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- /* Topology spread constraints with the component's selector added where none is given. */ -}}
{{- define "kthena.topologySpread" -}}
{{- $root := .root -}}
{{- $component := .component -}}
{{- range .constraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "kthena.selectorLabels" (dict "root" $root "component" $component) | fromYaml)) }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
{{- end }}

{{- /* cert-manager annotation that injects the CA of a plane's Certificate. */ -}}
{{- define "kthena.caInjection" -}}
{{- if eq .root.Values.certificates.mode "certManager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .root.Release.Namespace }}/{{ .certificate }}
{{- end }}
{{- end }}

{{- /* Checks across values that the schema cannot express. */ -}}
{{- define "kthena.validate" -}}
{{- if not (or .Values.workload.enabled .Values.networking.enabled) }}
{{- fail "kthena: workload.enabled and networking.enabled are both false: nothing to install" }}
{{- end }}
{{- $cm := .Values.workload.controllerManager }}
{{- if and .Values.workload.enabled (gt (int $cm.replicas) 1) (not $cm.leaderElection.enabled) }}
{{- fail "kthena: workload.controllerManager.replicas > 1 needs workload.controllerManager.leaderElection.enabled=true (replicas would reconcile the same objects)" }}
{{- end }}
{{- $r := .Values.networking.router }}
{{- if and $r.redis.passwordSecret.name (not $r.redis.address) }}
{{- fail "kthena: networking.router.redis.passwordSecret is set but networking.router.redis.address is empty" }}
{{- end }}
{{- if and $r.redis.address (hasKey $r.config "sessionSticky") }}
{{- fail "kthena: set either networking.router.redis.address or networking.router.config.sessionSticky, not both" }}
{{- end }}
{{- end }}

{{- /* PodDisruptionBudget of a component. Context: dict root, component, pdb, name. */ -}}
{{- define "kthena.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kthena.labels" . | nindent 4 }}
spec:
  {{- if .pdb.minAvailable }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "kthena.selectorLabels" . | nindent 6 }}
{{- end }}

{{- /* ServiceMonitor of a component's metrics. Context: dict root, component, name, service, port, sm. */ -}}
{{- define "kthena.serviceMonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kthena.labels" . | nindent 4 }}
    {{- with .sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  namespaceSelector:
    matchNames: [{{ .root.Release.Namespace }}]
  selector:
    matchLabels:
      {{- include "kthena.selectorLabels" . | nindent 6 }}
      app.kubernetes.io/service: {{ .service }}
  endpoints:
  - port: {{ .port }}
    path: /metrics
    interval: {{ .sm.interval }}
    {{- with .sm.scrapeTimeout }}
    scrapeTimeout: {{ . }}
    {{- end }}
{{- end }}
