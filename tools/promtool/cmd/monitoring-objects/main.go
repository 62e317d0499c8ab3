// Command monitoring-objects reads Kubernetes objects (multi-document YAML, e.g. `kustomize build`
// output) and decodes each Prometheus Operator object among them, ServiceMonitor and PrometheusRule,
// strictly into the Prometheus Operator's own Go types
// (github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1), the way the API
// server decodes strictly (sigs.k8s.io/json: field names case-sensitive, unknown and duplicate
// fields refused): a misspelled or misplaced field, or a value of the wrong type, is an error, as it
// would be pruned or refused by the Prometheus Operator's CRDs. Other objects are skipped.
//
// Output (stdout): one JSON line per Prometheus Operator object, {"kind", "namespace", "name"} or
// with "error". The exit code is 0 when the input was read, 1 when it was not YAML.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Error     string `json:"error,omitempty"`
}

func main() {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	out := json.NewEncoder(os.Stdout)
	for {
		document, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "monitoring-objects: %v\n", err)
			os.Exit(1)
		}
		var header metav1.TypeMeta
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(document, &header); err != nil || header.APIVersion != monitoringv1.SchemeGroupVersion.String() {
			continue
		}
		_ = yaml.Unmarshal(document, &meta)
		v := verdict{Kind: header.Kind, Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name}
		if err := decodeStrict(header.Kind, document); err != nil {
			v.Error = err.Error()
		}
		if err := out.Encode(v); err != nil {
			fmt.Fprintf(os.Stderr, "monitoring-objects: %v\n", err)
			os.Exit(1)
		}
	}
}

func decodeStrict(kind string, document []byte) error {
	var into any
	switch kind {
	case monitoringv1.ServiceMonitorsKind:
		into = &monitoringv1.ServiceMonitor{}
	case monitoringv1.PrometheusRuleKind:
		into = &monitoringv1.PrometheusRule{}
	default:
		return fmt.Errorf("%s is not a kind this check knows (ServiceMonitor, PrometheusRule)", kind)
	}
	data, err := yaml.YAMLToJSON(document)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(data, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
