package main

// The cases measured with testing.Benchmark: a body that runs one op b.N times, its setup
// before b.ResetTimer. Most mirror a benchmark of Go's own context package
// (src/context/benchmark_test.go); their notes in main.go say which.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Results are stored here so that the compiler cannot drop the work that made them.
var (
	sinkCtx  context.Context
	sinkErr  error
	sinkAny  any
	sinkHits int64
)

func withCancelCancel(b *testing.B) {
	bg := context.Background()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(bg)
		cancel()
		sinkCtx = ctx
	}
}

func withCancelFromCancelableParent(b *testing.B) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	// A first child makes the parent's Done channel and children map, which later children
	// reuse; the ctx side warms its parent the same way.
	_, cancelFirst := context.WithCancel(parent)
	cancelFirst()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(parent)
		cancel()
		sinkCtx = ctx
	}
}

func withTimeoutCancel(b *testing.B) {
	bg := context.Background()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(bg, time.Hour)
		cancel()
		sinkCtx = ctx
	}
}

// errCheck measures ctx.Err() on a live or a cancelled context.
func errCheck(cancelled bool) func(b *testing.B) {
	return func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if cancelled {
			cancel()
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sinkErr = ctx.Err()
		}
		if (sinkErr != nil) != cancelled {
			fail(b, "Err() = %v on a context cancelled=%v", sinkErr, cancelled)
		}
	}
}

// doneSelect measures the non-blocking receive from Done(), Go's way of asking "has it ended?".
// On a live context the channel is made before timing (Done makes it on first call); on a
// cancelled one Done is first called after the cancel, so it returns the shared closed channel.
func doneSelect(cancelled bool) func(b *testing.B) {
	return func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if cancelled {
			cancel()
		} else {
			_ = ctx.Done()
		}
		var hits int64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			select {
			case <-ctx.Done():
				hits++
			default:
			}
		}
		b.StopTimer()
		want := int64(0)
		if cancelled {
			want = int64(b.N)
		}
		if hits != want {
			fail(b, "the select saw the end %d times of %d (cancelled=%v)", hits, b.N, cancelled)
		}
	}
}

func doneSelectParallel(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = ctx.Done()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var hits int64
		for pb.Next() {
			select {
			case <-ctx.Done():
				hits++
			default:
			}
		}
		atomic.AddInt64(&sinkHits, hits)
	})
}

// cancelTree builds, per op, a root and a chain of depth contexts below it, then cancels the
// root, which walks the chain. Go's benchmark (and this one) drops the chain's CancelFuncs: a
// Go context stays in its parent's children map until it or an ancestor is cancelled.
func cancelTree(depth int) func(b *testing.B) {
	return func(b *testing.B) {
		bg := context.Background()
		for i := 0; i < b.N; i++ {
			root, cancel := context.WithCancel(bg)
			leaf := nest(root, depth)
			cancel()
			sinkCtx = leaf
		}
	}
}

// nest derives depth contexts, each from the previous one, and returns the last. Their
// CancelFuncs are dropped on purpose: the caller cancels an ancestor.
func nest(ctx context.Context, depth int) context.Context {
	for i := 0; i < depth; i++ {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		_ = cancel
	}
	return ctx
}

// busyWork is the arithmetic between the steps of BenchmarkCommonParentCancel: 100 dependent
// divisions, which keep the two goroutines from touching the shared parent back to back.
func busyWork(x int) int {
	for i := 0; i < 100; i++ {
		x /= x + 1
	}
	return x
}

// commonParentParallel is BenchmarkCommonParentCancel: every goroutine of b.RunParallel derives
// from, looks a value up through, and cancels under one shared parent.
func commonParentParallel(b *testing.B) {
	shared, cancelShared := context.WithCancel(context.WithValue(context.Background(), "key", "value"))
	defer cancelShared()
	var wrong int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := 0
		for pb.Next() {
			ctx, cancel := context.WithCancel(shared)
			if v, _ := ctx.Value("key").(string); v != "value" {
				atomic.AddInt64(&wrong, 1) // FailNow is for the benchmark's own goroutine
			}
			x = busyWork(x)
			cancel()
			x = busyWork(x)
		}
		atomic.AddInt64(&sinkHits, int64(x))
	})
	if wrong > 0 {
		fail(b, "Value(\"key\") missed %d times", wrong)
	}
}

// busyWorkParallel is the loop of commonParentParallel without its context calls: the floor
// that the busy work alone sets under that case.
func busyWorkParallel(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		x := 0
		for pb.Next() {
			x = busyWork(x)
			x = busyWork(x)
		}
		atomic.AddInt64(&sinkHits, int64(x))
	})
}

// valueMiss looks up a key that none of depth WithValue layers holds, so the lookup walks them
// all before reaching Background.
func valueMiss(depth int) func(b *testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		for i := 0; i < depth; i++ {
			ctx = context.WithValue(ctx, i, i)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sinkAny = ctx.Value(-1)
		}
		if sinkAny != nil {
			fail(b, "Value(-1) found %v", sinkAny)
		}
	}
}

func withValueChain(depth int) func(b *testing.B) {
	return func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ctx := context.Background()
			for j := 0; j < depth; j++ {
				ctx = context.WithValue(ctx, j, j)
			}
			sinkCtx = ctx
		}
	}
}

// withTimeoutParallel is BenchmarkWithTimeout/concurrency=N: N contexts with a 1 h timeout stay
// live while the op runs. Go keeps a timer heap per P, and a timer goes to the heap of the P
// that starts it, so the N are started from one goroutine per P (as Go's benchmark does).
func withTimeoutParallel(live int) func(b *testing.B) {
	return func(b *testing.B) {
		procs := runtime.GOMAXPROCS(0)
		held := make([][]context.CancelFunc, procs)
		var started sync.WaitGroup
		for p := range held {
			started.Add(1)
			go func(p int) {
				defer started.Done()
				fs := make([]context.CancelFunc, live/procs)
				for i := range fs {
					_, fs[i] = context.WithTimeout(context.Background(), time.Hour)
				}
				held[p] = fs
			}(p)
		}
		started.Wait()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var batch [10]context.CancelFunc
			for pb.Next() {
				for i := range batch {
					_, batch[i] = context.WithTimeout(context.Background(), time.Hour)
				}
				for _, cancel := range batch {
					cancel()
				}
			}
		})
		b.StopTimer()
		for _, fs := range held {
			for _, cancel := range fs {
				cancel()
			}
		}
	}
}
