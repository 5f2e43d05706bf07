package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"sync"
	"testing"
)

// record is one output line. The field order is the order of the keys in the line: the four
// figures first, then the bookkeeping.
type record struct {
	Name        string             `json:"name"`
	NsPerOp     float64            `json:"ns_per_op"`
	BytesPerOp  float64            `json:"bytes_per_op"`
	AllocsPerOp float64            `json:"allocs_per_op"`
	Iterations  int                `json:"iterations"`
	Method      string             `json:"method"`
	Group       string             `json:"group"`
	GoVersion   string             `json:"go_version"`
	GOMAXPROCS  int                `json:"gomaxprocs"`
	Extra       map[string]float64 `json:"extra,omitempty"`
	Note        string             `json:"note"`
}

const (
	methodLoop   = "testing.Benchmark"
	methodManual = "manual"
)

// writer prints records as JSON lines, one per record, flushed as each case ends.
type writer struct{ enc *json.Encoder }

func newWriter(w io.Writer) writer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // notes contain "<-ctx.Done()"; keep them readable
	return writer{enc}
}

func (w writer) write(r record) error {
	r.GoVersion = runtime.Version()
	r.GOMAXPROCS = runtime.GOMAXPROCS(0)
	for _, v := range append([]float64{r.NsPerOp, r.BytesPerOp, r.AllocsPerOp}, values(r.Extra)...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("a figure is not a finite number")
		}
	}
	return w.enc.Encode(r)
}

func values(m map[string]float64) []float64 {
	vs := make([]float64, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

// ---------------------------------------------------------------------------------------------
// Loop cases: testing.Benchmark.

// A loop body that finds a wrong result calls fail, which records why and stops the benchmark;
// testing.Benchmark then returns a result with N == 0 and its own message is lost.
var (
	failMu  sync.Mutex
	failMsg string
)

func fail(b *testing.B, format string, args ...any) {
	failMu.Lock()
	failMsg = fmt.Sprintf(format, args...)
	failMu.Unlock()
	b.FailNow()
}

// looped makes a case measured by testing.Benchmark, which grows b.N until one run of the body
// lasts -benchtime, and counts the allocations of that run (its timer's memory statistics are
// read whatever b.ReportAllocs says).
func looped(name string, body func(b *testing.B), note string) benchCase {
	return benchCase{name: name, run: func() (record, error) {
		failMsg = ""
		res := testing.Benchmark(body)
		if res.N == 0 {
			if failMsg == "" {
				failMsg = "testing.Benchmark did not complete"
			}
			return record{}, errors.New(failMsg)
		}
		n := float64(res.N)
		return record{
			NsPerOp:     float64(res.T.Nanoseconds()) / n,
			BytesPerOp:  float64(res.MemBytes) / n,
			AllocsPerOp: float64(res.MemAllocs) / n,
			Iterations:  res.N,
			Method:      methodLoop,
			Note:        note,
		}, nil
	}}
}

// ---------------------------------------------------------------------------------------------
// Statistics of the manual cases, defined as the Rust side defines them.

func sorted(xs []float64) []float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s
}

// median is the middle element, or the mean of the two middle ones.
func median(xs []float64) float64 {
	s := sorted(xs)
	n := len(s)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// percentile is the element at p*(n-1), rounded down.
func percentile(xs []float64, p float64) float64 {
	s := sorted(xs)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[int(p*float64(len(s)-1))]
}

func minOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// memDelta is what the heap did between two readings of the memory statistics.
type memDelta struct{ bytes, allocs float64 }

func readMem() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func since(before runtime.MemStats) memDelta {
	after := readMem()
	return memDelta{
		bytes:  float64(after.TotalAlloc - before.TotalAlloc),
		allocs: float64(after.Mallocs - before.Mallocs),
	}
}
