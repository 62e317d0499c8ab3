{{/*
Names are fixed, not derived from the release name: they are the same as the kustomize install's, so
docs, RBAC resourceNames (the Lease, the credential Secret) and the admission policy's parameters
refer to one name whichever way the operator was installed. The CRDs are cluster-wide, so a cluster
holds one release of this chart.
*/}}
{{- define "vaultpam.name" -}}vaultpam-connector-operator{{- end }}

{{/* The labels kustomize's manifests carry, which selectors and the tests rely on. */}}
{{- define "vaultpam.baseLabels" -}}
app.kubernetes.io/name: vaultpam-connector-operator
app.kubernetes.io/part-of: vaultpam
{{- end }}

{{/* Helm's own labels: which release and chart version wrote the object. */}}
{{- define "vaultpam.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* metadata.labels of an object without a component. */}}
{{- define "vaultpam.labels" -}}
{{ include "vaultpam.baseLabels" . }}
{{ include "vaultpam.helmLabels" . }}
{{- end }}

{{/* metadata.labels of the operator's own objects (component: operator). */}}
{{- define "vaultpam.operatorLabels" -}}
{{ include "vaultpam.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* metadata.labels of the admission policy's objects. */}}
{{- define "vaultpam.admissionLabels" -}}
{{ include "vaultpam.labels" . }}
app.kubernetes.io/component: admission-policy
{{- end }}

{{/* metadata.labels of the monitoring objects. */}}
{{- define "vaultpam.monitoringLabels" -}}
{{ include "vaultpam.labels" . }}
app.kubernetes.io/component: monitoring
{{- end }}

{{/* The operator pods: what the Deployment, PodDisruptionBudget, Service and spread rules select. */}}
{{- define "vaultpam.selectorLabels" -}}
app.kubernetes.io/name: vaultpam-connector-operator
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "vaultpam.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Where the operator reads the CA bundle of its default control plane, when it has one. */}}
{{- define "vaultpam.caFile" -}}
{{- if or .Values.controlPlane.ca.bundle .Values.controlPlane.ca.existingConfigMap -}}
/etc/vaultpam/control-plane-ca/ca.crt
{{- end -}}
{{- end }}

{{/*
The operator's settings, as the ConfigMap's data: the chart's values and extraSettings for the rest
(vaultpam.checks refuses an extraSettings entry for a variable a value sets).
*/}}
{{- define "vaultpam.settings" -}}
{{- $settings := dict -}}
{{- range $name, $value := .Values.operator.extraSettings -}}
{{- if eq $name "VAULTPAM_OPERATOR_METRICS_AUTH" -}}
{{- fail "operator.extraSettings.VAULTPAM_OPERATOR_METRICS_AUTH: an installed operator serves /metrics over HTTPS to authorized bearer tokens only (its ServiceMonitor expects it); none is for a local run; remove it from extraSettings" -}}
{{- end -}}
{{- $_ := set $settings $name (toString $value) -}}
{{- end -}}
{{- $_ := set $settings "VAULTPAM_OPERATOR_CONNECTOR_IMAGE" .Values.operator.connectorImage -}}
{{- $_ := set $settings "LOG_LEVEL" .Values.operator.logLevel -}}
{{- $_ := set $settings "VAULTPAM_OPERATOR_CONCURRENCY" (toString .Values.operator.concurrency) -}}
{{- $_ := set $settings "VAULTPAM_OPERATOR_RESYNC" .Values.operator.resync -}}
{{- with .Values.controlPlane.url -}}
{{- $_ := set $settings "VAULTPAM_OPERATOR_CONTROL_PLANE_URL" . -}}
{{- end -}}
{{- with (include "vaultpam.caFile" .) -}}
{{- $_ := set $settings "VAULTPAM_OPERATOR_CONTROL_PLANE_CA_FILE" . -}}
{{- end -}}
{{- if .Values.namespaced.enabled -}}
{{- $_ := set $settings "VAULTPAM_OPERATOR_NAMESPACE" .Values.namespaced.namespace -}}
{{- end -}}
{{- toYaml $settings -}}
{{- end }}

{{/*
Combinations of values the schema cannot express, refused with the value to change. Included by
deployment.yaml, which every install renders, so `helm template`, `helm install` and `helm lint` all
stop on them.
*/}}
{{- define "vaultpam.checks" -}}
{{- if and .Values.podDisruptionBudget.enabled (lt (int .Values.replicas) 2) -}}
{{- fail (printf "podDisruptionBudget.enabled is true with replicas: %d: a PodDisruptionBudget that keeps one replica available would block every node drain; set replicas to 2 or more, or podDisruptionBudget.enabled to false" (int .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.controlPlane.ca.bundle .Values.controlPlane.ca.existingConfigMap -}}
{{- fail "controlPlane.ca.bundle and controlPlane.ca.existingConfigMap are both set: the chart would create the ConfigMap vaultpam-control-plane-ca that you say exists; set one of them" -}}
{{- end -}}
{{- if and .Values.priorityClass.create (not .Values.priorityClass.name) -}}
{{- fail "priorityClass.create is true with an empty priorityClass.name: name the PriorityClass to create, or set priorityClass.create to false" -}}
{{- end -}}
{{- $deployment := list "VAULTPAM_OPERATOR_CREDENTIAL_SECRET" "VAULTPAM_OPERATOR_LEADER_ELECT" "VAULTPAM_OPERATOR_LEASE_NAME" "VAULTPAM_OPERATOR_LISTEN" "VAULTPAM_OPERATOR_METRICS_LISTEN" -}}
{{- $values := dict "VAULTPAM_OPERATOR_CONNECTOR_IMAGE" "operator.connectorImage" "LOG_LEVEL" "operator.logLevel" "VAULTPAM_OPERATOR_CONCURRENCY" "operator.concurrency" "VAULTPAM_OPERATOR_RESYNC" "operator.resync" "VAULTPAM_OPERATOR_CONTROL_PLANE_URL" "controlPlane.url" "VAULTPAM_OPERATOR_CONTROL_PLANE_CA_FILE" "controlPlane.ca" "VAULTPAM_OPERATOR_NAMESPACE" "namespaced.enabled and namespaced.namespace" "VAULTPAM_OPERATOR_METRICS_CERT_DIR" "metrics.certSecret" -}}
{{- /* The Role that grants Leases and Secrets is in the release namespace only. */ -}}
{{- $ungranted := list "VAULTPAM_OPERATOR_LEADER_ELECTION_NAMESPACE" "VAULTPAM_OPERATOR_CLUSTER_RESOURCE_NAMESPACE" -}}
{{- range $name, $value := .Values.operator.extraSettings -}}
{{- if has $name $ungranted -}}
{{- fail (printf "operator.extraSettings.%s: the chart grants the operator its Lease and the Secrets it reads in the release namespace only, so the operator could not use another namespace; remove it from extraSettings (the release namespace is used)" $name) -}}
{{- end -}}
{{- if has $name $deployment -}}
{{- fail (printf "operator.extraSettings.%s: the chart sets %s in the Deployment because other objects depend on it (RBAC resource names, probes, the metrics Service); remove it from extraSettings" $name $name) -}}
{{- end -}}
{{- with get $values $name -}}
{{- fail (printf "operator.extraSettings.%s: set it with %s instead, which the chart checks" $name .) -}}
{{- end -}}
{{- end -}}
{{- end }}
