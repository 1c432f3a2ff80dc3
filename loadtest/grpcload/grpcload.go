// Package grpcload drives a gRPC unary method with pre-encoded requests, closed loop (N callers,
// each sending its next request when the previous answer arrives) or open loop (requests due at
// a constant rate, latency measured from the time each was due, so a slow server cannot hide
// its queue: no coordinated omission). It sends raw bytes through a passthrough codec, so the
// client never marshals on the hot path, spreads calls over several connections, and reads the
// server's CPU seconds from /proc before and after to report CPU per request: client and server
// share the machine's cores.
package grpcload

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// RawCodec passes frames through unchanged: Marshal takes a *[]byte (or []byte), Unmarshal fills
// a *[]byte. Its name is "proto", so the wire content type is the ordinary application/grpc+proto
// and servers decode the bytes with their own protobuf codec.
type RawCodec struct{}

// Marshal returns the frame itself.
func (RawCodec) Marshal(v any) ([]byte, error) {
	switch b := v.(type) {
	case *[]byte:
		return *b, nil
	case []byte:
		return b, nil
	}
	return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
}

// Unmarshal keeps a copy of the frame in *v.
func (RawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// Name is "proto": the frames are protobuf messages encoded ahead of time.
func (RawCodec) Name() string { return "proto" }

// Config is one load run.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// Method is the full method name, e.g. "/mlops.scoring.v1.ScoringService/Score".
	Method string
	// Requests are encoded request messages, sent round robin. At least one.
	Requests [][]byte
	// Conns is the number of connections. Default: 4 (at most Concurrency in closed loop).
	Conns int
	// Concurrency is the number of callers in closed loop, and the most requests in flight in
	// open loop (a request due while all are busy waits, and its wait counts). Default: 1.
	Concurrency int
	// Rate, when > 0, selects open loop: requests due at Rate per second.
	Rate float64
	// Duration is how long requests are sent after Warmup. Required.
	Duration time.Duration
	// Warmup runs the same load first without recording. Default: 0.
	Warmup time.Duration
	// Timeout bounds each call. Default: 5s.
	Timeout time.Duration
	// ServerPID, when > 0, is the process whose CPU time (with its descendants') is read
	// before and after.
	ServerPID int
	// Check, when set, validates each response (called from several goroutines).
	Check func(resp []byte) error
}

// Result is what one run measured. Latencies are in microseconds.
type Result struct {
	Method      string  `json:"method"`
	Mode        string  `json:"mode"` // "closed" or "open"
	Concurrency int     `json:"concurrency"`
	Conns       int     `json:"conns"`
	TargetRate  float64 `json:"target_rate,omitempty"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	MaxUs       float64 `json:"max_us"`
	MeanUs      float64 `json:"mean_us"`
	// ServerCPUSeconds is the server's utime+stime over the measured window; CPUPerRequestUs
	// divides it by the successful requests (0 without ServerPID).
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	CPUPerRequestUs  float64 `json:"server_cpu_per_request_us"`
	// ClientCPUSeconds is this process's own CPU time over the window.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
}

// Run dials cfg.Conns connections and runs the load. It returns an error for a bad config or
// when the connections cannot be made; failed calls are counted in Result.Errors.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Addr == "" || cfg.Method == "" || len(cfg.Requests) == 0 || cfg.Duration <= 0 {
		return Result{}, errors.New("grpcload: Addr, Method, Requests and Duration are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 4
	}
	if cfg.Rate <= 0 {
		cfg.Conns = min(cfg.Conns, cfg.Concurrency)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	conns := make([]*grpc.ClientConn, cfg.Conns)
	for i := range conns {
		c, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(RawCodec{})))
		if err != nil {
			return Result{}, fmt.Errorf("grpcload: dial %s: %w", cfg.Addr, err)
		}
		defer c.Close()
		c.Connect()
		conns[i] = c
	}
	if cfg.Warmup > 0 {
		w := cfg
		w.Duration, w.ServerPID = cfg.Warmup, 0
		run(ctx, w, conns)
	}
	return run(ctx, cfg, conns), ctx.Err()
}

func run(ctx context.Context, cfg Config, conns []*grpc.ClientConn) Result {
	res := Result{Method: cfg.Method, Mode: "closed", Concurrency: cfg.Concurrency, Conns: len(conns)}
	if cfg.Rate > 0 {
		res.Mode, res.TargetRate = "open", cfg.Rate
	}
	var (
		nreq, nerr atomic.Int64
		firstErr   atomic.Value
		next       atomic.Uint64
		mu         sync.Mutex
		lat        []float64
	)
	call := func(c *grpc.ClientConn, resp *[]byte) error {
		i := next.Add(1) - 1
		req := cfg.Requests[i%uint64(len(cfg.Requests))]
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		if err := c.Invoke(cctx, cfg.Method, &req, resp); err != nil {
			return err
		}
		if cfg.Check != nil {
			return cfg.Check(*resp)
		}
		return nil
	}
	record := func(local []float64, err error, d time.Duration) []float64 {
		if err != nil {
			nerr.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return local
		}
		nreq.Add(1)
		return append(local, float64(d.Microseconds())+float64(d.Nanoseconds()%1000)/1000)
	}
	cpu0 := procCPU(cfg.ServerPID)
	self0 := procCPU(os.Getpid())
	start := time.Now()
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	if cfg.Rate <= 0 {
		for w := range cfg.Concurrency {
			c := conns[w%len(conns)]
			wg.Go(func() {
				local := make([]float64, 0, 4096)
				var resp []byte
				for time.Now().Before(end) && ctx.Err() == nil {
					t0 := time.Now()
					err := call(c, &resp)
					local = record(local, err, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
		}
	} else {
		// Open loop: one scheduler hands out intended send times; the workers take them in
		// order. A request's latency runs from its intended time, so time spent waiting for a
		// free worker (a queue the server caused) is counted.
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		due := make(chan time.Time, 1<<16)
		for w := range cfg.Concurrency {
			c := conns[w%len(conns)]
			wg.Go(func() {
				local := make([]float64, 0, 4096)
				var resp []byte
				for at := range due {
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					}
					err := call(c, &resp)
					local = record(local, err, time.Since(at))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
		}
		for k := 0; ; k++ {
			at := start.Add(time.Duration(k) * interval)
			if !at.Before(end) || ctx.Err() != nil {
				break
			}
			// Hand out times a little ahead, never more than 2ms early.
			if d := time.Until(at) - 2*time.Millisecond; d > 0 {
				time.Sleep(d)
			}
			due <- at
		}
		close(due)
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	res.Requests, res.Errors = nreq.Load(), nerr.Load()
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	res.RPS = float64(res.Requests) / res.Seconds
	if cfg.ServerPID > 0 {
		res.ServerCPUSeconds = procCPU(cfg.ServerPID) - cpu0
		if res.Requests > 0 {
			res.CPUPerRequestUs = res.ServerCPUSeconds / float64(res.Requests) * 1e6
		}
	}
	res.ClientCPUSeconds = procCPU(os.Getpid()) - self0
	slices.Sort(lat)
	res.P50us, res.P90us, res.P99us, res.P999us = Quantile(lat, 0.5), Quantile(lat, 0.9), Quantile(lat, 0.99), Quantile(lat, 0.999)
	if len(lat) > 0 {
		res.MaxUs = lat[len(lat)-1]
		var sum float64
		for _, v := range lat {
			sum += v
		}
		res.MeanUs = sum / float64(len(lat))
	}
	return res
}

// Quantile returns the q-quantile of sorted values (nearest rank; NaN when empty). Every
// latency is kept, so the percentiles are exact, not bucketed.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times; 100 on every Linux port.
const clockTicks = 100

// procCPU returns the utime+stime in seconds of pid and its live descendants (MLServer runs
// its inference workers as child processes) from /proc (0 when pid <= 0).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	total := 0.0
	for _, p := range ProcTree(pid) {
		s, _ := ProcCPUSeconds(p)
		total += s
	}
	return total
}

// ProcTree returns pid and its live descendants, read from /proc/*/stat.
func ProcTree(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// ProcCPUSeconds returns pid's user plus system CPU time in seconds.
func ProcCPUSeconds(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// After the name: state(3) ... utime is field 14, stime 15 (1-based over the whole line).
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return (ut + st) / clockTicks, nil
}

// ProcPeakRSSMiB returns pid's peak resident set size (VmHWM) in MiB.
func ProcPeakRSSMiB(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status VmHWM %q: %w", pid, rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}
