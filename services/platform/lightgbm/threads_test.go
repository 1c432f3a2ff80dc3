package lightgbm

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"sync"
	"testing"
)

// TestConcurrentNumThreads runs LightGBM calls that ask for different num_threads at the
// same time: batch predictions with 1 and 4 threads, single-row predictors made with 3,
// datasets built and models trained with 1 and with LightGBM's default. LightGBM keeps
// num_threads in one process-wide variable that every call sets and sizes its per-thread
// buffers from, so without the binding's thread gate a call's buffers are sized for one
// count and its parallel loop runs with another: heap corruption, a crash or wrong
// numbers. Every result must equal the one computed alone.
func TestConcurrentNumThreads(t *testing.T) {
	lib := testLib(t)
	m, y := synthFraud(3000, 8, 21)
	base := Params{"objective": "binary", "verbosity": "-1", "min_data_in_leaf": "5", "deterministic": "true", "seed": "1"}
	bst := trainOn(t, lib, m, y, base.with("num_threads", "1"), 20)
	want, err := bst.Predict(m, PredictNormal, PredictOptions{NumThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(want[0]) {
		t.Fatal("reference prediction is NaN")
	}
	// The same model trained alone, with one thread and with the default, for comparison.
	wantTrained := map[string]string{}
	for _, nt := range []string{"1", "0"} {
		b := trainOn(t, lib, m, y, base.with("num_threads", nt), 10)
		if wantTrained[nt], err = b.SaveModelString(); err != nil {
			t.Fatal(err)
		}
	}

	const rounds = 1000
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, nt := range []int{1, 4, 1, 4} {
		wg.Go(func() {
			for range rounds {
				got, err := bst.Predict(m, PredictNormal, PredictOptions{NumThreads: nt})
				if err != nil {
					errs <- err
					return
				}
				for i := range got {
					if got[i] != want[i] {
						errs <- fmt.Errorf("predict with %d threads: row %d %v, alone %v", nt, i, got[i], want[i])
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			fp, err := bst.NewFastPredictor(FastOptions{NumThreads: 3})
			if err != nil {
				errs <- err
				return
			}
			v, err := fp.Predict(m.Data[:m.Cols])
			_ = fp.Close()
			if err != nil || v != want[0] {
				errs <- fmt.Errorf("fast predictor (3 threads): %v, %v, alone %v", err, v, want[0])
				return
			}
		}
	})
	for _, nt := range []string{"1", "0"} {
		wg.Go(func() {
			for range 100 {
				ds, err := lib.NewDataset(m, y, DatasetOptions{Params: base.with("num_threads", nt)})
				if err != nil {
					errs <- err
					return
				}
				b, err := Train(context.Background(), base.with("num_threads", nt), ds, TrainOptions{NumRounds: 10})
				_ = ds.Close()
				if err != nil {
					errs <- err
					return
				}
				text, err := b.SaveModelString()
				_ = b.Close()
				if err != nil || text != wantTrained[nt] {
					errs <- fmt.Errorf("training with num_threads=%s: %v; model differs from the one trained alone: %v", nt, err, text != wantTrained[nt])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// with returns a copy of p with k set to v.
func (p Params) with(k, v string) Params {
	q := maps.Clone(p)
	q[k] = v
	return q
}

// TestThreadGate checks the gate alone: callers with the same count share it, a caller with
// another count never overlaps them, and a caller waiting with another count gets in even
// while callers with the first keep arriving.
func TestThreadGate(t *testing.T) {
	g := newThreadGate()
	var mu sync.Mutex
	inside := map[int]int{}
	overlap := 0
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				n := (w + i) % 3
				g.enter(n)
				mu.Lock()
				inside[n]++
				for other, c := range inside {
					if other != n && c > 0 {
						overlap++
					}
				}
				mu.Unlock()
				mu.Lock()
				inside[n]--
				mu.Unlock()
				g.leave()
			}
		})
	}
	wg.Wait()
	if overlap != 0 {
		t.Fatalf("%d times a caller was inside with another num_threads", overlap)
	}

	// Starvation: a caller with count 2 arrives while one with count 1 is inside; a
	// newcomer with count 1 must then queue behind it instead of joining.
	g.enter(1)
	got := make(chan struct{})
	go func() {
		g.enter(2)
		close(got)
		g.leave()
	}()
	waitFor := func(n int, done <-chan struct{}) {
		t.Helper()
		for {
			select {
			case <-done:
				t.Fatal("got in while it had to wait")
			default:
			}
			g.mu.Lock()
			w := g.waiting
			g.mu.Unlock()
			if w == n {
				return
			}
			runtime.Gosched()
		}
	}
	waitFor(1, got)
	late := make(chan struct{})
	go func() {
		g.enter(1) // must not join the holder while count 2 waits
		close(late)
		g.leave()
	}()
	waitFor(2, late)
	g.leave()
	<-got
	<-late
}
