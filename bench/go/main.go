// Command ctxbench is the Go baseline of ctx's comparison benchmark: it measures Go's own
// context package, case by case, with the same case names and the same definition of one op as
// ctx-core/benches/compare.rs, so that the two outputs join by name.
//
// It prints one JSON object per line on stdout (progress goes to stderr):
//
//	{"name":"with_cancel_cancel","ns_per_op":64.2,"bytes_per_op":80,"allocs_per_op":2,
//	 "iterations":17685031,"method":"testing.Benchmark","group":"required",
//	 "go_version":"go1.19.8","gomaxprocs":2,"note":"..."}
//
// The first four keys are the figures; the rest is bookkeeping: how many ops or runs the
// figure comes from, how it was measured ("testing.Benchmark" or "manual"), whether the case is
// one the comparison requires or an extra one, the toolchain, the number of Ps, an optional
// "extra" map of further figures, and a note saying what one op is.
//
// Standard library only, Go 1.19 or newer (so no WithCancelCause, AfterFunc and friends).
//
//	go run . [-benchtime 1s] [-only REGEXP] [-extras=false] [-procs 2]
//
// See README.md beside this file for what each case measures.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// benchCase is one line of output: a name, its group, and the function that measures it.
type benchCase struct {
	name  string
	group string // groupRequired or groupExtra
	run   func() (record, error)
}

const (
	groupRequired = "required"
	groupExtra    = "extra"
)

// cases lists every case in the order it runs. Sizes of the manual cases come from the flags.
func cases(o options) []benchCase {
	var cs []benchCase
	req := func(c benchCase) { c.group = groupRequired; cs = append(cs, c) }
	ext := func(c benchCase) { c.group = groupExtra; cs = append(cs, c) }

	req(looped("with_cancel_cancel", withCancelCancel,
		"WithCancel(Background()) then its cancel(); Done() is never called"))
	req(looped("with_cancel_from_cancelable_parent", withCancelFromCancelableParent,
		"WithCancel(parent) on a live WithCancel parent whose children map exists (one child made and cancelled before timing), then cancel(): an insert into and a delete from that map"))
	req(looped("with_timeout_cancel", withTimeoutCancel,
		"WithTimeout(Background(), 1h) then cancel(): a runtime timer started and stopped"))
	req(looped("err_check_live", errCheck(false),
		"ctx.Err() on a live WithCancel context (a mutex lock and unlock before Go 1.25, an atomic load since)"))
	req(looped("done_select_nonblocking", doneSelect(false),
		"select { case <-ctx.Done(): default: } on a live WithCancel context whose Done channel was made before timing"))
	for _, depth := range []int{1, 10, 100, 1000} {
		req(looped(fmt.Sprintf("cancel_tree_depth_%d", depth), cancelTree(depth),
			"Go's BenchmarkCancelTree (Root=OpenCanceler): WithCancel(Background()) as root, N more WithCancel nested below it (a chain; their CancelFuncs are dropped), then cancel(root); one op is the whole tree"))
	}
	req(benchCase{name: "chain_1m_create_cancel", run: func() (record, error) {
		return chain(1_000_000, o.chainRuns)
	}})
	req(benchCase{name: "fanout_100k_cancel", run: func() (record, error) {
		return fanout(100_000, o.fanoutRuns)
	}})
	req(benchCase{name: "cancel_wake_latency", run: func() (record, error) {
		return wakeLatency(o.wakeSamples, false)
	}})
	req(looped("common_parent_parallel", commonParentParallel,
		"Go's BenchmarkCommonParentCancel under b.RunParallel: WithCancel(shared) + Value(\"key\") + 100 divisions + cancel() + 100 divisions; ns = wall time / all ops of all goroutines"))

	ext(looped("err_check_canceled", errCheck(true),
		"Go's BenchmarkCheckCanceled/Err: ctx.Err() on a cancelled WithCancel context"))
	ext(looped("done_select_canceled", doneSelect(true),
		"Go's BenchmarkCheckCanceled/Done: the non-blocking select on a context cancelled before its first Done() (the shared closed channel)"))
	ext(looped("done_select_parallel_live", doneSelectParallel,
		"Go's BenchmarkContextCancelDone: the non-blocking select on one live context under b.RunParallel"))
	for _, depth := range []int{10, 100} {
		ext(looped(fmt.Sprintf("value_lookup_depth_%d_miss", depth), valueMiss(depth),
			"Go's BenchmarkDeepValueSameGoRoutine: Value(-1) through N WithValue layers keyed 0..N-1, a miss that walks all N"))
		ext(looped(fmt.Sprintf("with_value_chain_depth_%d", depth), withValueChain(depth),
			"Go's BenchmarkWithValue: N WithValue layers built on Background()"))
	}
	for _, live := range []int{40, 400_000} {
		ext(looped(fmt.Sprintf("with_timeout_parallel_concurrency_%d", live), withTimeoutParallel(live),
			"Go's BenchmarkWithTimeout/concurrency=N: with N other WithTimeout(1h) contexts live (their timers spread over the Ps), one op = 10 WithTimeout(Background(), 1h) then their 10 cancels, under b.RunParallel"))
	}
	ext(looped("common_parent_parallel_busy_work_only", busyWorkParallel,
		"the 200 divisions of common_parent_parallel alone, under b.RunParallel: the floor of that case"))
	ext(benchCase{name: "cancel_wake_latency_busy_canceller", run: func() (record, error) {
		return wakeLatency(o.wakeSamples, true)
	}})
	return cs
}

type options struct {
	benchtime   string
	only        *regexp.Regexp
	extras      bool
	procs       int
	chainRuns   int
	fanoutRuns  int
	wakeSamples int
	list        bool
}

func parseFlags() options {
	var o options
	var only string
	flag.StringVar(&o.benchtime, "benchtime", "1s", "target time of each testing.Benchmark case (as go test -benchtime: 1s, 300ms, 1000x)")
	flag.StringVar(&only, "only", "", "run only the cases whose name matches this regular expression")
	flag.BoolVar(&o.extras, "extras", true, "also run the extra cases (false: the required ones only)")
	flag.IntVar(&o.procs, "procs", 2, "GOMAXPROCS for the run (the Rust side uses 2 threads); 0 keeps Go's default")
	flag.IntVar(&o.chainRuns, "chain-runs", 3, "timed runs of chain_1m_create_cancel (the median is reported)")
	flag.IntVar(&o.fanoutRuns, "fanout-runs", 5, "timed runs of fanout_100k_cancel (the median is reported)")
	flag.IntVar(&o.wakeSamples, "wake-samples", 2000, "samples of cancel_wake_latency (the median is reported)")
	flag.BoolVar(&o.list, "list", false, "print the case names (with their group) and exit")
	flag.Parse()
	if flag.NArg() > 0 {
		usageExit("unexpected argument %q", flag.Arg(0))
	}
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			usageExit("bad -only: %v", err)
		}
		o.only = re
	}
	if o.chainRuns < 1 || o.fanoutRuns < 1 || o.wakeSamples < 1 {
		usageExit("-chain-runs, -fanout-runs and -wake-samples must be at least 1")
	}
	// testing.Benchmark reads its target time from the testing package's own flag.
	if err := flag.Set("test.benchtime", o.benchtime); err != nil {
		usageExit("bad -benchtime: %v", err)
	}
	return o
}

func usageExit(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ctxbench: "+format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}

func main() {
	testing.Init() // registers test.benchtime, which parseFlags sets
	o := parseFlags()
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}

	var selected []benchCase
	for _, c := range cases(o) {
		if (c.group == groupRequired || o.extras) && (o.only == nil || o.only.MatchString(c.name)) {
			selected = append(selected, c)
		}
	}
	if o.list {
		for _, c := range selected {
			fmt.Printf("%s\t%s\n", c.name, c.group)
		}
		return
	}
	if len(selected) == 0 {
		fmt.Fprintln(os.Stderr, "ctxbench: no case selected")
		os.Exit(2)
	}

	out := newWriter(os.Stdout)
	start := time.Now()
	failed := 0
	for _, c := range selected {
		fmt.Fprintf(os.Stderr, "ctxbench: %s ...\n", c.name)
		runtime.GC() // start every case from a collected heap
		r, err := c.run()
		if err != nil {
			fmt.Fprintf(os.Stderr, "ctxbench: %s failed: %v\n", c.name, err)
			failed++
			continue
		}
		r.Name, r.Group = c.name, c.group
		if err := out.write(r); err != nil {
			fmt.Fprintf(os.Stderr, "ctxbench: %s: %v\n", c.name, err)
			failed++
		}
	}
	fmt.Fprintf(os.Stderr, "ctxbench: %d case(s) in %v\n", len(selected), time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "ctxbench: %d case(s) failed\n", failed)
		os.Exit(1)
	}
}
