package main

// The cases timed by hand, because one op is too large for a loop (a chain of a million
// contexts, a hundred thousand parked goroutines) or is a latency across goroutines. Each is
// repeated and reports its median; the statistics are defined in record.go as on the Rust side.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ---------------------------------------------------------------------------------------------
// chain_1m_create_cancel

// chain builds a root and a chain of n contexts below it, then cancels the root; one op is the
// build plus the cancel. The first build only measures memory (and warms the heap, as the Rust
// side runs a warm-up); then runs builds are timed, each from a collected heap, with the
// collector running as it likes inside the timed part: that is Go's price for the allocations.
func chain(n, runs int) (record, error) {
	bg := context.Background()

	// The memory run: the live heap with the chain built, after a collection (which frees the
	// dropped CancelFuncs; what is left is what the chain holds).
	runtime.GC()
	before := readMem()
	root, cancel := context.WithCancel(bg)
	leaf := nest(root, n)
	runtime.GC()
	built := readMem()
	cancel()
	if leaf.Err() != context.Canceled {
		return record{}, errors.New("the leaf did not end with its root (memory run)")
	}
	runtime.KeepAlive(root)
	liveBytes := float64(int64(built.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	liveObjects := float64(int64(built.HeapObjects)-int64(before.HeapObjects)) / float64(n)
	root, leaf, cancel = nil, nil, nil

	var totals, builds, cancels, collects, bytes, allocs []float64
	for r := 0; r < runs; r++ {
		runtime.GC()
		mem := readMem()
		t0 := time.Now()
		root, cancel := context.WithCancel(bg)
		leaf := nest(root, n)
		t1 := time.Now()
		cancel()
		t2 := time.Now()
		d := since(mem)
		if leaf.Err() != context.Canceled {
			return record{}, fmt.Errorf("the leaf did not end with its root (run %d)", r)
		}
		runtime.KeepAlive(root)
		root, leaf = nil, nil
		// Not part of the op: a full collection of the dead chain, Go's counterpart of the
		// drop that the Rust side reports apart.
		t3 := time.Now()
		runtime.GC()
		collects = append(collects, ns(time.Since(t3)))

		totals = append(totals, ns(t2.Sub(t0)))
		builds = append(builds, ns(t1.Sub(t0)))
		cancels = append(cancels, ns(t2.Sub(t1)))
		bytes = append(bytes, d.bytes)
		allocs = append(allocs, d.allocs)
	}
	return record{
		NsPerOp:     median(totals),
		BytesPerOp:  median(bytes),
		AllocsPerOp: median(allocs),
		Iterations:  runs,
		Method:      methodManual,
		Extra: map[string]float64{
			"contexts":                float64(n),
			"build_ns_median":         median(builds),
			"cancel_ns_median":        median(cancels),
			"gc_after_ns_median":      median(collects),
			"ns_per_context":          median(totals) / float64(n),
			"peak_heap_bytes_per_ctx": liveBytes,
			"heap_objects_per_ctx":    liveObjects,
			"alloc_bytes_per_ctx":     median(bytes) / float64(n),
			"allocs_per_ctx":          median(allocs) / float64(n),
			"total_ns_min":            minOf(totals),
			"total_ns_max":            maxOf(totals),
		},
		Note: fmt.Sprintf("one op = WithCancel(Background()) as root + %d WithCancel nested below it (their CancelFuncs dropped, as Go's buildContextTree does) + cancel(root); ns, bytes and allocs are per whole op, the median of %d runs, GC included as it happens; gc_after_ns_median = a full runtime.GC() of the dead chain after each run, not part of the op; peak_heap_bytes_per_ctx = growth of HeapAlloc, after a GC, with the chain built / %d", n, runs, n),
	}, nil
}

func ns(d time.Duration) float64 { return float64(d.Nanoseconds()) }

// ---------------------------------------------------------------------------------------------
// fanout_100k_cancel

// fanout gives one parent n children, each awaited by a goroutine of its own, and times from
// cancel(parent) until the last goroutine has woken. Setup is untimed and followed by 50 ms of
// idleness, so that every goroutine is parked and every P idle when the cancel comes.
func fanout(n, runs int) (record, error) {
	var totals, calls, setups, bytes, allocs []float64
	for r := 0; r < runs; r++ {
		runtime.GC()
		parent, cancel := context.WithCancel(context.Background())
		var ready, woke sync.WaitGroup
		var wrong int64
		ready.Add(n)
		woke.Add(n)
		t := time.Now()
		for i := 0; i < n; i++ {
			child, cancelChild := context.WithCancel(parent)
			_ = cancelChild // ended through the parent
			go func() {
				done := child.Done()
				ready.Done()
				<-done
				if child.Err() != context.Canceled {
					atomic.AddInt64(&wrong, 1)
				}
				woke.Done()
			}()
		}
		ready.Wait()
		setups = append(setups, ns(time.Since(t)))
		time.Sleep(50 * time.Millisecond)

		mem := readMem()
		t0 := time.Now()
		cancel()
		t1 := time.Now()
		woke.Wait()
		t2 := time.Now()
		d := since(mem)
		if wrong > 0 {
			return record{}, fmt.Errorf("%d goroutines woke without Canceled (run %d)", wrong, r)
		}
		totals = append(totals, ns(t2.Sub(t0)))
		calls = append(calls, ns(t1.Sub(t0)))
		bytes = append(bytes, d.bytes)
		allocs = append(allocs, d.allocs)
	}
	return record{
		NsPerOp:     median(totals),
		BytesPerOp:  median(bytes),
		AllocsPerOp: median(allocs),
		Iterations:  runs,
		Method:      methodManual,
		Extra: map[string]float64{
			"children":              float64(n),
			"cancel_call_ns_median": median(calls),
			"ns_per_child":          median(totals) / float64(n),
			"setup_ns_median":       median(setups),
			"total_ns_min":          minOf(totals),
			"total_ns_max":          maxOf(totals),
		},
		Note: fmt.Sprintf("one op = from cancel(parent) until all %d goroutines blocked on <-child.Done() have woken (a WaitGroup); each child is WithCancel(parent), its CancelFunc dropped; setup untimed, then 50 ms idle; median of %d runs; bytes and allocs over the timed window", n, runs),
	}, nil
}

// ---------------------------------------------------------------------------------------------
// cancel_wake_latency, cancel_wake_latency_busy_canceller

// wakeLatency parks one goroutine on <-ctx.Done() per sample and measures from just before
// cancel() to the waiter's first clock reading after its wake.
//
// After the cancel the canceller blocks on a channel, so the scheduler runs the woken goroutine
// next on the same P (runnext), as tokio runs a woken task from its worker's LIFO slot. With
// busy, the canceller spins until the waiter has run instead, so another P must pick the waiter
// up: a cross-thread wake, which mostly measures how soon Go's scheduler steals it.
func wakeLatency(samples int, busy bool) (record, error) {
	lat := make([]float64, 0, samples)
	mem := readMem()
	for i := 0; i < samples; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := ctx.Done()
		started := make(chan struct{})
		woke := make(chan time.Time, 1)
		var ran int32
		go func() {
			close(started)
			<-done
			at := time.Now()
			atomic.StoreInt32(&ran, 1)
			if ctx.Err() != context.Canceled {
				at = time.Time{}
			}
			woke <- at
		}()
		<-started
		// There is no way to see that a goroutine is parked; it is on its next line, and 50 µs
		// is long enough for it to block there.
		time.Sleep(50 * time.Microsecond)
		t0 := time.Now()
		cancel()
		if busy {
			for atomic.LoadInt32(&ran) == 0 {
			}
		}
		at := <-woke
		if at.IsZero() {
			return record{}, fmt.Errorf("the waiter woke without Canceled (sample %d)", i)
		}
		lat = append(lat, ns(at.Sub(t0)))
	}
	d := since(mem)
	note := "ns_per_op = median over samples of (the waiter's time.Now() after <-ctx.Done() returns) - (time.Now() just before cancel()); the canceller then blocks on a channel, so the waiter usually runs next on the same P (runnext); bytes and allocs per sample, setup included (context, goroutine, channels)"
	if busy {
		note = "as cancel_wake_latency, but the canceller spins after cancel() until the waiter has run, so another P must pick the waiter up (a cross-thread wake; bimodal, informational only); bytes and allocs per sample, setup included"
	}
	return record{
		NsPerOp:     median(lat),
		BytesPerOp:  d.bytes / float64(samples),
		AllocsPerOp: d.allocs / float64(samples),
		Iterations:  samples,
		Method:      methodManual,
		Extra: map[string]float64{
			"p10_ns":  percentile(lat, 0.10),
			"p90_ns":  percentile(lat, 0.90),
			"p99_ns":  percentile(lat, 0.99),
			"min_ns":  minOf(lat),
			"max_ns":  maxOf(lat),
			"mean_ns": mean(lat),
		},
		Note: note,
	}, nil
}
