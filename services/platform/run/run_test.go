package run_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/platform/run"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waiter is an actor that blocks until its context is cancelled and records that it drained.
func waiter(name string, drained *bool) run.Actor {
	return run.Actor{Name: name, Run: func(ctx context.Context) error {
		<-ctx.Done()
		*drained = true
		return nil
	}}
}

func TestRunFirstFailureStopsAll(t *testing.T) {
	t.Parallel()
	var drained bool
	boom := errors.New("boom")
	err := run.Run(context.Background(), discard(),
		waiter("waiter", &drained),
		run.Actor{Name: "failer", Run: func(context.Context) error { return boom }},
	)
	if !errors.Is(err, boom) {
		t.Fatalf("Run() = %v, want it to wrap %v", err, boom)
	}
	if !strings.Contains(err.Error(), "failer") {
		t.Errorf("Run() error %q does not name the failing actor", err)
	}
	if !drained {
		t.Error("the other actor was not cancelled and drained")
	}
}

func TestRunParentCancel(t *testing.T) {
	t.Parallel()
	var a, b bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx, discard(), waiter("a", &a), waiter("b", &b)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v, want nil after a clean shutdown", err)
	}
	if !a || !b {
		t.Errorf("drained a=%v b=%v, want both", a, b)
	}
}

func TestRunPanicBecomesError(t *testing.T) {
	t.Parallel()
	err := run.Run(context.Background(), discard(),
		run.Actor{Name: "panicky", Run: func(context.Context) error { panic("oops") }})
	if err == nil || !strings.Contains(err.Error(), "panic: oops") {
		t.Fatalf("Run() = %v, want a panic error", err)
	}
}

func TestRunNoActors(t *testing.T) {
	t.Parallel()
	if err := run.Run(context.Background(), discard()); err == nil {
		t.Fatal("Run() with no actors = nil, want an error")
	}
}

func ExampleRun() {
	ctx, cancel := context.WithCancel(context.Background())
	worker := run.Actor{Name: "worker", Run: func(ctx context.Context) error {
		cancel() // pretend a signal arrived
		<-ctx.Done()
		return nil
	}}
	err := run.Run(ctx, discard(), worker)
	fmt.Println("clean shutdown:", err == nil)
	// Output: clean shutdown: true
}
