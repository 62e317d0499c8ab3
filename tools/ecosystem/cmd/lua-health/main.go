// Command lua-health runs an Argo CD resource health script (health.lua) on Kubernetes objects the
// way Argo CD does, and prints each result as JSON.
//
// It follows argo-cd's util/lua (VM.ExecuteHealthLua) with the same interpreter, gopher-lua:
//   - a fresh Lua state per object; without -open-libs only the libraries Argo CD opens for a
//     health check from argocd-cm (package, base, table and its safe os with time and date),
//     with -open-libs every standard library (built-in scripts, Argo CD's own health tests, and
//     argocd-cm's resource.customizations.useOpenLibs.<group_kind>: "true");
//   - the object as the global obj (numbers become Lua numbers, as in Argo CD's decodeValue);
//   - a one-second limit on the script;
//   - the returned table encoded as JSON by layeh.com/gopher-json and read as {status, message};
//     a status that is not one of Argo CD's health codes becomes Unknown, "Lua returned an invalid
//     health status"; nil becomes an empty status.
//
// With -resource it also applies what Argo CD does around the script (gitops-engine's
// GetResourceHealth): an object with metadata.deletionTimestamp is Progressing, "Pending deletion",
// without running the script, and a script error becomes Unknown with the error as the message.
//
// Usage: lua-health -script health.lua [-open-libs] [-resource] OBJECT.yaml|OBJECT.json|- ...
// Prints one JSON object per input, in order: {"input": ..., "status": ..., "message": ...}.
// Exits 1 when a script fails (without -resource), 2 on bad usage or unreadable input.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// Argo CD's health status codes (gitops-engine pkg/health).
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

type output struct {
	Input   string `json:"input"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	script := flag.String("script", "", "path of the health.lua to run (required)")
	openLibs := flag.Bool("open-libs", false, "open every Lua standard library (Argo CD's useOpenLibs)")
	resource := flag.Bool("resource", false, "also apply Argo CD's handling around the script: deletion, script errors")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: lua-health -script health.lua [-open-libs] [-resource] OBJECT.yaml|OBJECT.json|- ...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *script == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	source, err := os.ReadFile(*script)
	if err != nil {
		fail(2, "reading the script: %v", err)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetEscapeHTML(false)
	exit := 0
	for _, input := range flag.Args() {
		obj, err := readObject(input)
		if err != nil {
			fail(2, "%s: %v", input, err)
		}
		var result *healthStatus
		if *resource && deleting(obj) {
			result = &healthStatus{Status: "Progressing", Message: "Pending deletion"}
		} else {
			result, err = executeHealthLua(obj, string(source), *openLibs)
			if err != nil {
				if !*resource {
					fmt.Fprintf(os.Stderr, "%s: %v\n", input, err)
					exit = 1
					continue
				}
				result = &healthStatus{Status: "Unknown", Message: err.Error()}
			}
		}
		if err := encoder.Encode(output{Input: input, Status: result.Status, Message: result.Message}); err != nil {
			fail(2, "writing the result: %v", err)
		}
	}
	os.Exit(exit)
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lua-health: "+format+"\n", args...)
	os.Exit(code)
}

// readObject reads one object from a YAML or JSON file ("-": standard input), as Argo CD's health
// tests do (sigs.k8s.io/yaml into a map).
func readObject(path string) (map[string]any, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func deleting(obj map[string]any) bool {
	metadata, _ := obj["metadata"].(map[string]any)
	ts, _ := metadata["deletionTimestamp"].(string)
	return ts != ""
}

// executeHealthLua runs the script and reads its result as Argo CD's VM.ExecuteHealthLua does.
func executeHealthLua(obj map[string]any, script string, openLibs bool) (*healthStatus, error) {
	l, err := runLua(obj, script, openLibs)
	if err != nil {
		return nil, err
	}
	returnValue := l.Get(-1)
	switch returnValue.Type() {
	case lua.LTTable:
		jsonBytes, err := luajson.Encode(returnValue)
		if err != nil {
			return nil, err
		}
		status := &healthStatus{}
		if err := json.Unmarshal(jsonBytes, status); err != nil {
			// An empty table encodes as an array: Argo CD reads it as an empty status.
			var typeError *json.UnmarshalTypeError
			if errors.As(err, &typeError) && typeError.Value == "array" {
				return &healthStatus{}, nil
			}
			return nil, err
		}
		if !validStatus[status.Status] {
			return &healthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
		}
		return status, nil
	case lua.LTNil:
		return &healthStatus{}, nil
	}
	return nil, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type().String())
}

// runLua runs the script as Argo CD's VM does: the libraries it opens, its reduced os, the time
// limit, and obj.
func runLua(obj map[string]any, script string, openLibs bool) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	// require("os") finds the reduced os too.
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	// Argo CD drops the Lua stack trace from run-time errors: they reach the user.
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
		err = apiErr
	}
	return l, err
}

// toLua turns an object's value into a Lua value with Argo CD's rules: maps become tables with
// string keys, lists become sequences, every number a Lua number, a json.Number a string, and
// anything else (null included) nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(string(v))
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}

// Argo CD gives scripts a reduced os: time and date, nothing that reads files, runs programs or
// exits. Its loader registers them as it is written there, under the name of the table library
// (so in a restricted state os.time is reached through require("os"), and table.time exists);
// this does the same, so a script that works here works there.
var safeOs = map[string]lua.LGFunction{"time": osTime, "date": osDate}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOs))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOs))
	return 1
}

// osTime: os.time() is now; os.time{year=, month=, day=, hour=12, min=0, sec=0} a local time.
func osTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	fields := l.CheckTable(1)
	field := func(name string, fallback int) int {
		if n, ok := fields.RawGetString(name).(lua.LNumber); ok {
			return int(n)
		}
		return fallback
	}
	at := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
		field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
	l.Push(lua.LNumber(at.Unix()))
	return 1
}

// osDate: os.date([format [, time]]), "!" for UTC, "*t" for a table, else a strftime subset.
func osDate(l *lua.LState) int {
	at := time.Now()
	format := "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
	}
	if l.GetTop() >= 2 {
		at = time.Unix(int64(l.CheckNumber(2)), 0)
	}
	if len(format) > 0 && format[0] == '!' {
		at, format = at.UTC(), format[1:]
	}
	if format == "*t" {
		t := l.NewTable()
		for name, value := range map[string]int{
			"year": at.Year(), "month": int(at.Month()), "day": at.Day(), "hour": at.Hour(),
			"min": at.Minute(), "sec": at.Second(), "wday": int(at.Weekday()) + 1, "yday": at.YearDay(),
		} {
			t.RawSetString(name, lua.LNumber(value))
		}
		t.RawSetString("isdst", lua.LFalse)
		l.Push(t)
		return 1
	}
	layouts := map[byte]string{
		'Y': "2006", 'm': "01", 'd': "02", 'H': "15", 'M': "04", 'S': "05", 'y': "06",
		'b': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'p': "PM", 'c': "Mon Jan  2 15:04:05 2006",
		'x': "01/02/06", 'X': "15:04:05", 'Z': "MST", 'z': "-0700",
	}
	out := make([]byte, 0, len(format)+16)
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			out = append(out, format[i])
			continue
		}
		i++
		if layout, ok := layouts[format[i]]; ok {
			out = append(out, at.Format(layout)...)
		} else {
			out = append(out, '%', format[i])
		}
	}
	l.Push(lua.LString(string(out)))
	return 1
}
