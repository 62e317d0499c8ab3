//go:build tools

// Package tools pins what the chart tests (test/chart/) build: helm from helm.sh/helm/v4, and
// controller-gen from sigs.k8s.io/controller-tools, which build.sh runs on the Prometheus
// operator's API types to produce the ServiceMonitor and PrometheusRule CRDs the chart's
// monitoring objects are checked against on a real API server. Nothing here is run.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "helm.sh/helm/v4/cmd/helm"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
