// Command kstatus prints, for each Kubernetes object it reads, the status the kstatus library
// computes for it (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute): the library that kubectl's
// apply --wait family, cli-utils' poller and Flux's health checks use to decide whether an object
// is Current, InProgress, Failed, Terminating or Unknown.
//
// Input on stdin: JSON objects (one, several in a row, a JSON array of them, or a List such as
// `kubectl get -o json` prints). Output: one JSON line per object, in order:
//
//	{"apiVersion": ..., "kind": ..., "namespace": ..., "name": ..., "status": "Current",
//	 "message": "Resource is Ready", "conditions": [{"type": "Stalled", "status": "True", ...}]}
//
// Exits 2 when the input is not JSON or an object cannot be judged.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

type output struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Namespace  string      `json:"namespace,omitempty"`
	Name       string      `json:"name"`
	Status     string      `json:"status"`
	Message    string      `json:"message"`
	Conditions []condition `json:"conditions"`
}

func main() {
	decoder := json.NewDecoder(os.Stdin)
	decoder.UseNumber()
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	for {
		var value any
		err := decoder.Decode(&value)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fail("reading JSON: %v", err)
		}
		for _, obj := range objects(value) {
			if err := encoder.Encode(compute(obj)); err != nil {
				fail("writing the result: %v", err)
			}
		}
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}

// objects flattens a JSON array or a List into its objects.
func objects(value any) []map[string]any {
	switch v := value.(type) {
	case []any:
		var all []map[string]any
		for _, item := range v {
			all = append(all, objects(item)...)
		}
		return all
	case map[string]any:
		if items, ok := v["items"].([]any); ok {
			if kind, _ := v["kind"].(string); kind == "List" || len(kind) > 4 && kind[len(kind)-4:] == "List" {
				return objects(items)
			}
		}
		return []map[string]any{v}
	}
	fail("expected a JSON object, an array of objects or a List, got %T", value)
	return nil
}

func compute(obj map[string]any) output {
	// Numbers as the API server's JSON decoder gives them to Go clients (int64 or float64), so that
	// metadata.generation and status.observedGeneration compare as they do in a controller.
	u := &unstructured.Unstructured{Object: normalise(obj).(map[string]any)}
	result, err := status.Compute(u)
	if err != nil {
		fail("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	conditions := make([]condition, 0, len(result.Conditions))
	for _, c := range result.Conditions {
		conditions = append(conditions, condition{
			Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message,
		})
	}
	return output{
		APIVersion: u.GetAPIVersion(),
		Kind:       u.GetKind(),
		Namespace:  u.GetNamespace(),
		Name:       u.GetName(),
		Status:     result.Status.String(),
		Message:    result.Message,
		Conditions: conditions,
	}
}

func normalise(value any) any {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			v[key] = normalise(item)
		}
		return v
	case []any:
		for i, item := range v {
			v[i] = normalise(item)
		}
		return v
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	}
	return value
}
