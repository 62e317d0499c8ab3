//go:build tools

// Package tools pins the command the monitoring tests build (promtool), so `go mod tidy` keeps it.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
