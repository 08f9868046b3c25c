#!/usr/bin/env bash
# Checks the deployment files (make check-deploy): the alert rules with
# promtool, the systemd unit with systemd-analyze, the Kubernetes manifests
# with kubeconform against schemas made from the OpenAPI spec that the
# pinned k8s.io/kubernetes module ships (no network but the Go module
# proxy). Needs Go, promtool (Debian: prometheus) and systemd-analyze.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=v1.37.2                                         # the API the manifests are checked against
KUBECONFORM=github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
KINDS="v1/ConfigMap v1/Secret v1/Service apps/v1/StatefulSet"
MANIFESTS="deploy/kubernetes/secret.yaml deploy/kubernetes/configmap.yaml deploy/kubernetes/service.yaml deploy/kubernetes/statefulset.yaml"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== alert rules (docs/alerts.yaml)"
promtool check rules docs/alerts.yaml
promtool test rules docs/alerts_test.yaml

echo "== systemd unit (deploy/systemd/lattice.service)"
# verify wants ExecStart's binary to exist: check a copy that runs a
# freshly built one, the unit otherwise as shipped.
go build -o "$tmp/lattice" ./cmd/lattice
sed "s#/usr/local/bin/lattice agent#$tmp/lattice agent#" deploy/systemd/lattice.service >"$tmp/lattice.service"
if ! out=$(systemd-analyze verify "$tmp/lattice.service" 2>&1) || [ -n "$out" ]; then
	# A misspelt directive is only a warning to systemd; here it fails.
	echo "$out"
	echo "check-deploy: systemd-analyze verify complained about deploy/systemd/lattice.service"
	exit 1
fi
# The hardening holds: an exposure above 2.0 (of 10) fails.
systemd-analyze security --offline=yes --threshold=20 "$tmp/lattice.service" | tail -n 1

echo "== Kubernetes manifests (deploy/kubernetes) against Kubernetes $K8S_VERSION"
spec_dir=$(cd "$tmp" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ ! -f "$spec_dir/api/openapi-spec/swagger.json" ]; then
	echo "check-deploy: no api/openapi-spec/swagger.json in k8s.io/kubernetes@$K8S_VERSION ($spec_dir)"
	exit 1
fi
# shellcheck disable=SC2086
go run ./deploy/kubeschema -spec "$spec_dir/api/openapi-spec/swagger.json" -out "$tmp/schemas" $KINDS
# shellcheck disable=SC2086
go run "$KUBECONFORM" -strict -summary -schema-location "$tmp/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" $MANIFESTS
