package lightgbm

import (
	"strconv"
	"strings"
	"sync"
)

// LightGBM keeps num_threads in one process-wide variable (LGBM_DEFAULT_NUM_THREADS, set by
// OMP_SET_NUM_THREADS at the start of every call that takes parameters) and reads it again
// wherever it sizes per-thread buffers or starts a parallel loop. Two calls that ask for
// different counts at the same time therefore corrupt each other: one sizes its buffers for
// 1 thread, the other sets 4, and the first's loop runs 4 threads into a 1-slot buffer
// (heap corruption, a segmentation fault in an OpenMP thread; LightGBM itself warns "num_threads
// changed during training"). Training reads it on every round, so a training run is
// exposed from LGBM_BoosterCreate to its last round.
//
// threadGate lets calls that agree on num_threads run together and makes a call with
// another count wait until they are done. It guards every call of this package that sets
// the variable and runs a parallel loop: dataset construction, training, batch prediction
// and the single-row predictor's init. Single-row predictions (FastPredictor.Predict), the
// Forest and the Go TreeSHAP do not set it and do not wait.
type threadGate struct {
	mu      sync.Mutex
	cond    sync.Cond
	value   int // the num_threads of the calls inside (0: LightGBM's default)
	inside  int
	waiting int
}

// lgbmThreads is the gate of the process: LightGBM's variable is one per loaded library,
// and a process loads one.
var lgbmThreads = newThreadGate()

func newThreadGate() *threadGate {
	g := &threadGate{}
	g.cond.L = &g.mu
	return g
}

// enter waits until the calls inside ask for the same num_threads or none is inside, then
// lets the caller in. A newcomer also waits while anyone is waiting, so a stream of calls
// with one count does not starve a call with another.
func (g *threadGate) enter(numThreads int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inside > 0 && (g.value != numThreads || g.waiting > 0) {
		g.waiting++
		for {
			g.cond.Wait() // broadcast when the last caller inside leaves
			if g.inside == 0 || g.value == numThreads {
				break
			}
		}
		g.waiting--
	}
	g.value = numThreads
	g.inside++
}

func (g *threadGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inside--
	if g.inside == 0 {
		g.cond.Broadcast()
	}
}

// numThreads is the num_threads LightGBM reads from p (its aliases included), 0 for its
// default (also for a count LightGBM would reject: the call fails on its own).
func numThreads(p Params) int {
	v, ok := p["num_threads"]
	if !ok {
		for _, alias := range []string{"num_thread", "nthread", "nthreads", "n_jobs"} {
			if v, ok = p[alias]; ok {
				break
			}
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
