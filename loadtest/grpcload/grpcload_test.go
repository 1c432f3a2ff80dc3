package grpcload

import (
	"context"
	"errors"
	"math"
	"net"
	"os"
	"testing"
	"time"
)

func startEcho(t *testing.T, reply []byte) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewEchoServer(reply)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// TestRunClosedAndOpenLoop drives an in-process echo server both ways: every call succeeds
// and its reply reaches Check, percentiles are ordered, the open loop keeps its rate, and the
// CPU of this process (the server here) is read from /proc.
func TestRunClosedAndOpenLoop(t *testing.T) {
	reply := []byte("pong-bytes")
	addr := startEcho(t, reply)
	check := func(b []byte) error {
		if string(b) != string(reply) {
			return errors.New("wrong reply")
		}
		return nil
	}
	reqs := [][]byte{EncodeV2Infer("m", "", []float64{1, 2}), EncodeV2Ready("m")}
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "closed", cfg: Config{Concurrency: 4}},
		{name: "open", cfg: Config{Concurrency: 8, Rate: 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Addr, cfg.Method, cfg.Requests, cfg.Check = addr, "/any.Service/Call", reqs, check
			cfg.Duration, cfg.Warmup, cfg.ServerPID = 500*time.Millisecond, 100*time.Millisecond, os.Getpid()
			r, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors != 0 || r.Requests == 0 {
				t.Fatalf("requests %d errors %d (%s)", r.Requests, r.Errors, r.FirstError)
			}
			if !(r.P50us > 0 && r.P50us <= r.P90us && r.P90us <= r.P99us && r.P99us <= r.MaxUs) {
				t.Errorf("percentiles out of order: %+v", r)
			}
			if r.ServerCPUSeconds <= 0 || r.CPUPerRequestUs <= 0 {
				t.Errorf("server CPU %v s, %v us/request; want > 0", r.ServerCPUSeconds, r.CPUPerRequestUs)
			}
			if cfg.Rate > 0 && math.Abs(r.RPS-cfg.Rate)/cfg.Rate > 0.2 {
				t.Errorf("open loop at %v/s ran %v/s", cfg.Rate, r.RPS)
			}
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := Run(context.Background(), Config{Addr: "127.0.0.1:1", Method: "/a/b", Duration: time.Second}); err == nil {
		t.Error("Run without requests succeeded")
	}
}

// TestV2Codec checks the hand-encoded V2 messages against the field numbers of the spec: a
// response built the way MLServer sends one (fp64 contents, or raw FP32 bytes) decodes to its
// score, and the request carries the row bit for bit.
func TestV2Codec(t *testing.T) {
	t.Parallel()
	row := []float64{0.25, -3, 1e9}
	req := EncodeV2Infer("fraud", "id-1", row)
	// An InferOutputTensor is laid out like an InferInputTensor: decode the request's first
	// input as if it were a response's output.
	var in []byte
	if err := eachField(req, func(n protoNumber, _ protoType, v []byte, _ uint64) error {
		if n == 5 {
			in = v
		}
		return nil
	}); err != nil || in == nil {
		t.Fatalf("request has no input tensor (%v)", err)
	}
	resp := appendBytesField(nil, 5, in)
	got, err := DecodeV2Score(resp)
	if err != nil || got != row[0] {
		t.Errorf("DecodeV2Score(fp64) = %v, %v; want %v", got, err, row[0])
	}
	out := appendBytesField(appendBytesField(nil, 1, []byte("predict")), 2, []byte("FP32"))
	raw := []byte{0, 0, 0x80, 0x3e} // 0.25 as little-endian float32
	got, err = DecodeV2Score(appendBytesField(appendBytesField(nil, 5, out), 6, raw))
	if err != nil || got != 0.25 {
		t.Errorf("DecodeV2Score(raw fp32) = %v, %v; want 0.25", got, err)
	}
	if _, err := DecodeV2Score([]byte{0xff}); err == nil {
		t.Error("a truncated response decoded")
	}
	ready, err := DecodeV2Ready([]byte{0x08, 0x01})
	if err != nil || !ready {
		t.Errorf("DecodeV2Ready = %v, %v", ready, err)
	}
}

func TestProcCPUAndRSS(t *testing.T) {
	t.Parallel()
	s, err := ProcCPUSeconds(os.Getpid())
	if err != nil || s <= 0 {
		t.Errorf("ProcCPUSeconds(self) = %v, %v", s, err)
	}
	m, err := ProcPeakRSSMiB(os.Getpid())
	if err != nil || m <= 1 {
		t.Errorf("ProcPeakRSSMiB(self) = %v, %v", m, err)
	}
	if _, err := ProcCPUSeconds(1 << 30); err == nil {
		t.Error("no error for a missing process")
	}
}
