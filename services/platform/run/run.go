// Package run is the one run loop of every service: a group of actors that start together
// and stop together.
package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// An Actor is one long-lived part of a service (a gRPC server, a Kafka consumer, the admin
// HTTP server). Run blocks until ctx is done, drains and returns nil, or returns an error
// when it fails. Run must release everything it acquired before returning.
type Actor struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run starts all actors and blocks until every one has returned. The first actor to return
// (with or without an error) cancels the context of the others, as does cancellation of ctx.
// Run returns the actors' errors joined, each prefixed with its actor's name; an actor that
// returns nil or context.Canceled after shutdown began contributes no error.
func Run(ctx context.Context, logger *slog.Logger, actors ...Actor) error {
	if len(actors) == 0 {
		return errors.New("run: no actors")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, a := range actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			logger.Info("actor started", "actor", a.Name)
			err := runActor(ctx, a)
			if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
				logger.Error("actor failed", "actor", a.Name, "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", a.Name, err))
				mu.Unlock()
				return
			}
			logger.Info("actor stopped", "actor", a.Name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runActor runs one actor, turning a panic into an error so one broken actor stops the
// group cleanly instead of crashing the process without draining the others.
func runActor(ctx context.Context, a Actor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return a.Run(ctx)
}
