// Command checklines checks the output of ctxbench, read from stdin: every line one JSON
// object with a non-empty string "name" (no name twice) and the three figures "ns_per_op",
// "bytes_per_op" and "allocs_per_op" as non-negative numbers; "group", where present, is
// "required" or "extra". It prints what is wrong on stderr and exits 1 if anything is, or if
// there is no line at all. run.sh runs it on every result before printing it.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	seen := map[string]int{}
	lines, bad := 0, 0
	complain := func(line int, format string, args ...any) {
		fmt.Fprintf(os.Stderr, "checklines: line %d: %s\n", line, fmt.Sprintf(format, args...))
		bad++
	}
	for in.Scan() {
		lines++
		var obj map[string]json.RawMessage
		text := bytes.TrimSpace(in.Bytes())
		if len(text) == 0 || text[0] != '{' || json.Unmarshal(text, &obj) != nil {
			complain(lines, "not one JSON object: %.80q", in.Text())
			continue
		}
		var name string
		if json.Unmarshal(obj["name"], &name) != nil || name == "" {
			complain(lines, `no "name" string`)
		} else if first, dup := seen[name]; dup {
			complain(lines, "%q already on line %d", name, first)
		} else {
			seen[name] = lines
		}
		for _, key := range []string{"ns_per_op", "bytes_per_op", "allocs_per_op"} {
			var v *float64 // stays nil for a JSON null
			if raw, ok := obj[key]; !ok || json.Unmarshal(raw, &v) != nil || v == nil || *v < 0 {
				complain(lines, "%s: %q is not a non-negative number", name, key)
			}
		}
		if raw, ok := obj["group"]; ok {
			var g string
			if json.Unmarshal(raw, &g) != nil || (g != "required" && g != "extra") {
				complain(lines, `%s: "group" is neither "required" nor "extra"`, name)
			}
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "checklines:", err)
		os.Exit(1)
	}
	if lines == 0 {
		fmt.Fprintln(os.Stderr, "checklines: no output at all")
		os.Exit(1)
	}
	if bad > 0 {
		os.Exit(1)
	}
}
