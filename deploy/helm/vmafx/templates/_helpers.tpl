{{/* Names, labels and the pieces the templates share. */}}

{{- define "vmafx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-vmafx, or the release name when it holds the chart name already; at most 40
characters, so that every "<fullname>-<part>-<revision>" stays a valid name. */}}
{{- define "vmafx.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vmafx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels every object of one release shares; the NetworkPolicies admit pods by these. */}}
{{- define "vmafx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vmafx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of an object: call with (dict "root" $ "component" "node"). */}}
{{- define "vmafx.labels" -}}
helm.sh/chart: {{ include "vmafx.chart" .root }}
{{ include "vmafx.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "vmafx.componentSelector" -}}
{{ include "vmafx.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vmafx.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) -}}
{{- end -}}

{{- define "vmafx.schedulerService" -}}
{{- printf "%s-scheduler" (include "vmafx.fullname" .) -}}
{{- end -}}

{{/* The address nodes and the batch Job give Dask: the scheduler's Service. */}}
{{- define "vmafx.schedulerAddress" -}}
{{- printf "tcp://%s:%d" (include "vmafx.schedulerService" .) (int .Values.scheduler.port) -}}
{{- end -}}

{{/* The Secret holding rclone.conf: the existing one named in the values, or the chart's own;
empty when there is none. Refuses both at once. */}}
{{- define "vmafx.rcloneSecret" -}}
{{- $r := .Values.storage.rclone -}}
{{- if and $r.config $r.existingSecret -}}
{{- fail "set storage.rclone.config or storage.rclone.existingSecret, not both" -}}
{{- end -}}
{{- if $r.existingSecret -}}
{{- $r.existingSecret -}}
{{- else if $r.config -}}
{{- printf "%s-rclone" (include "vmafx.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "vmafx.rcloneSecretKey" -}}
{{- if .Values.storage.rclone.existingSecret -}}
{{- .Values.storage.rclone.existingSecretKey -}}
{{- else -}}
rclone.conf
{{- end -}}
{{- end -}}

{{/* Where the config is mounted: the image's VMAFX_RCLONE_CONFIG. */}}
{{- define "vmafx.rcloneConfigDir" -}}/etc/vmafx{{- end -}}
{{- define "vmafx.rcloneConfigPath" -}}/etc/vmafx/rclone.conf{{- end -}}

{{/* The image's user and group (docker/Dockerfile.node: vmafx, 10001:10001). */}}
{{- define "vmafx.uid" -}}10001{{- end -}}

{{/* Pod security context of every pod: the image's non-root user; fsGroup gives the Secret's
files, the emptyDirs and the results volume the image's group. */}}
{{- define "vmafx.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "vmafx.uid" . }}
runAsGroup: {{ include "vmafx.uid" . }}
fsGroup: {{ include "vmafx.uid" . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context without FUSE: the scheduler, the batch Job, and the nodes in every
mode but rclone-mount. */}}
{{- define "vmafx.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "vmafx.uid" . }}
runAsGroup: {{ include "vmafx.uid" . }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Container security context of the nodes in rclone-mount mode, for the image's setuid-root
fusermount3: SYS_ADMIN for its mount(2) and umount(2), DAC_READ_SEARCH to look up the private (0700)
mount folder of the job's user (with every other capability dropped, root cannot), and privilege
escalation allowed (no_new_privs would disable the setuid bit). The added capabilities are only in
the bounding set: vmafx, rclone and ffmpeg (uid 10001, not setuid) run without any. */}}
{{- define "vmafx.mountSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "vmafx.uid" . }}
runAsGroup: {{ include "vmafx.uid" . }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: true
privileged: false
capabilities:
  drop: [ALL]
  add: [SYS_ADMIN, DAC_READ_SEARCH]
{{- if .Values.storage.fuse.appArmorUnconfined }}
appArmorProfile:
  type: Unconfined
{{- end }}
{{- end -}}

{{/* Environment variables that look like credentials must not carry a literal value. */}}
{{- define "vmafx.checkEnv" -}}
{{- range .env -}}
{{- $upper := upper (toString .name) -}}
{{- if and (hasKey . "value") (regexMatch "(SECRET|PASSWORD|PASS$|TOKEN|ACCESS_KEY|_KEY$|SAS_URL|SERVICE_ACCOUNT_CREDENTIALS)" $upper) -}}
{{- fail (printf "%s: %s looks like a credential: put credentials in the rclone config (storage.rclone.config or storage.rclone.existingSecret), not in a literal env value" $.what .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The emptyDirs of every container: /tmp and the home folder (vmafx's cache, Dask's config),
since the root file system is read-only. */}}
{{- define "vmafx.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/vmafx
{{- end -}}

{{- define "vmafx.scratchVolumes" -}}
- name: tmp
{{- if .sizeLimit }}
  emptyDir:
    sizeLimit: {{ .sizeLimit }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: home
  emptyDir: {}
{{- end -}}
