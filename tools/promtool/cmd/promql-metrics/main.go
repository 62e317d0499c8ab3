// Command promql-metrics names the metrics PromQL expressions read, with Prometheus's own parser
// (github.com/prometheus/prometheus/promql/parser, the one Prometheus and promtool use), so a test
// can hold every alert and dashboard query to the metrics the code really exports.
//
// Input (stdin): a JSON array of {"id": "...", "expr": "..."}. Output (stdout): one JSON line per
// expression, {"id", "metrics": [...], "selectors": [{"metric", "matchers": [{"name", "type",
// "value"}]}]} or {"id", "error"}: an expression that does not parse, or a selector without a
// literal metric name (a regular expression on __name__ could match anything), is reported by id.
// The exit code is 0 when every expression was read, 1 on bad input.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type query struct {
	ID   string `json:"id"`
	Expr string `json:"expr"`
}

type matcher struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

type selector struct {
	Metric   string    `json:"metric"`
	Matchers []matcher `json:"matchers"`
}

type answer struct {
	ID        string     `json:"id"`
	Metrics   []string   `json:"metrics,omitempty"`
	Selectors []selector `json:"selectors,omitempty"`
	Error     string     `json:"error,omitempty"`
}

func main() {
	var queries []query
	if err := json.NewDecoder(os.Stdin).Decode(&queries); err != nil {
		fmt.Fprintf(os.Stderr, "promql-metrics: stdin must be a JSON array of {\"id\", \"expr\"}: %v\n", err)
		os.Exit(1)
	}
	p := parser.NewParser(parser.Options{})
	out := json.NewEncoder(os.Stdout)
	for _, q := range queries {
		if err := out.Encode(read(p, q)); err != nil {
			fmt.Fprintf(os.Stderr, "promql-metrics: %v\n", err)
			os.Exit(1)
		}
	}
}

func read(p parser.Parser, q query) answer {
	expr, err := p.ParseExpr(q.Expr)
	if err != nil {
		return answer{ID: q.ID, Error: err.Error()}
	}
	names := map[string]bool{}
	var selectors []selector
	var problem string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		matchers := []matcher{}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if name == "" && m.Type == labels.MatchEqual {
					name = m.Value
				}
				continue
			}
			matchers = append(matchers, matcher{Name: m.Name, Type: m.Type.String(), Value: m.Value})
		}
		if name == "" {
			problem = fmt.Sprintf("selector %s names no metric", vs.String())
			return nil
		}
		names[name] = true
		selectors = append(selectors, selector{Metric: name, Matchers: matchers})
		return nil
	})
	if problem != "" {
		return answer{ID: q.ID, Error: problem}
	}
	metrics := make([]string, 0, len(names))
	for name := range names {
		metrics = append(metrics, name)
	}
	sort.Strings(metrics)
	return answer{ID: q.ID, Metrics: metrics, Selectors: selectors}
}
