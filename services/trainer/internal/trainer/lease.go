package trainer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/mlflow"
)

// Tags on the MLflow registered model that carry the retraining lease and the cooldown, so
// that they survive a restart and are shared by every trainer replica.
const (
	// TagRetrainLease is "<owner> <expiry RFC3339>": a run of the model is in progress on
	// owner until expiry unless renewed.
	TagRetrainLease = "mlops.retrain.lease"
	// TagRetrainLast is the RFC3339 time the last drift-triggered retrain completed
	// (registered a version, promoted or rejected on merit); drift-triggered retrains wait
	// Config.RetrainCooldown after it. Manual retrains do not set it.
	TagRetrainLast = "mlops.retrain.last"
)

// leaseTTL is how long a lease lasts without renewal; the holder renews it every
// leaseTTL/3, so a crashed holder blocks other replicas for at most leaseTTL.
const leaseTTL = 2 * time.Minute

// defaultLeaseOwner names this process: hostname, pid and a random suffix, so that a
// restarted process never mistakes its predecessor's lease for its own.
func defaultLeaseOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	host = strings.Map(func(r rune) rune {
		if r == ' ' {
			return '_'
		}
		return r
	}, host)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// lease is a parsed TagRetrainLease value.
type lease struct {
	Owner  string
	Expiry time.Time
}

func (l lease) String() string { return l.Owner + " " + l.Expiry.UTC().Format(time.RFC3339Nano) }

func parseLease(v string) (lease, bool) {
	owner, exp, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || owner == "" {
		return lease{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, exp)
	if err != nil {
		return lease{}, false
	}
	return lease{Owner: owner, Expiry: t}, true
}

// modelTag sets (value non-nil) or deletes (nil) a tag of a registered model. The platform
// MLflow client has no call for registered-model tags; this is the REST call
// (registered-models/set-tag, registered-models/delete-tag) on the same base URL and HTTP
// client, retried like the client's own calls.
func (s *Server) modelTag(ctx context.Context, model, key string, value *string) error {
	mlf := s.deps.MLflow
	method, path := http.MethodPost, "/api/2.0/mlflow/registered-models/set-tag"
	body := map[string]string{"name": model, "key": key}
	if value != nil {
		body["value"] = *value
	} else {
		method, path = http.MethodDelete, "/api/2.0/mlflow/registered-models/delete-tag"
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	hc := mlf.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	var last error
	for attempt := range 4 {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(100<<attempt) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(ctx.Err(), last)
			case <-t.C:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(rctx, method, strings.TrimRight(mlf.BaseURL, "/")+path, bytes.NewReader(payload))
		if err != nil {
			cancel()
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			cancel()
			last = fmt.Errorf("%w: %w", mlflow.ErrUnavailable, err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		cancel()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case resp.StatusCode == http.StatusNotFound && value == nil:
			return nil // deleting a tag that is not set
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("%w: status %d: %s", mlflow.ErrUnavailable, resp.StatusCode, bytes.TrimSpace(b))
			continue
		}
		return fmt.Errorf("mlflow %s %s tag %q of model %q: status %d: %s", method, path, key, model, resp.StatusCode, bytes.TrimSpace(b))
	}
	return fmt.Errorf("mlflow %s tag %q of model %q: %w", method, key, model, last)
}

func (s *Server) setModelTag(ctx context.Context, model, key, value string) error {
	return s.modelTag(ctx, model, key, &value)
}

// lastRetrain reads TagRetrainLast of model; zero when unset or the model does not exist.
func (s *Server) lastRetrain(ctx context.Context, model string) (time.Time, error) {
	rm, err := s.deps.MLflow.GetRegisteredModel(ctx, model)
	if errors.Is(err, mlflow.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	v := rm.Tags[TagRetrainLast]
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		s.logger.Warn("unreadable retrain time tag ignored", "model", model, "tag", TagRetrainLast, "value", v)
		return time.Time{}, nil
	}
	return t, nil
}

// heldLease is a lease this server holds on a model.
type heldLease struct {
	s      *Server
	model  string
	value  string
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// errLeaseLost cancels a run whose lease another replica took over.
var errLeaseLost = errors.New("retraining lease taken over by another trainer")

// acquireLease takes the retraining lease of model in MLflow (creating the registered model
// if needed) and returns ctx for the run, cancelled if the lease is lost, and the lease,
// which the caller must release. A lease held by another owner and not expired is
// ErrRetrainRunning; an expired one is taken over.
//
// MLflow has no compare-and-set. The lease is read, written, and read back after
// Config.LeaseSettle: if the read-back shows another owner, a concurrent taker wrote after
// us and we back off. This detects every race in which each replica's read-then-write took
// less than LeaseSettle; a replica stalled longer than that between its read and its write
// can still overwrite a fresh lease, and then two runs proceed (docs/trainer.md).
func (s *Server) acquireLease(ctx context.Context, model string) (context.Context, *heldLease, error) {
	mlf := s.deps.MLflow
	if err := mlf.EnsureRegisteredModel(ctx, model); err != nil {
		return nil, nil, fmt.Errorf("retraining lease: %w", err)
	}
	rm, err := mlf.GetRegisteredModel(ctx, model)
	if err != nil {
		return nil, nil, fmt.Errorf("retraining lease: %w", err)
	}
	readAt := s.now()
	if cur, ok := parseLease(rm.Tags[TagRetrainLease]); ok && cur.Owner != s.owner && cur.Expiry.After(readAt) {
		return nil, nil, fmt.Errorf("model %q: %w (lease held by %s until %s)", model, ErrRetrainRunning, cur.Owner, cur.Expiry.UTC().Format(time.RFC3339))
	} else if ok && cur.Owner != s.owner {
		s.logger.Warn("expired retraining lease taken over", "model", model, "previous_owner", cur.Owner, "expired", cur.Expiry)
		s.m.leases.WithLabelValues("taken_over").Inc()
	}
	mine := lease{Owner: s.owner, Expiry: readAt.Add(leaseTTL)}.String()
	if err := s.setModelTag(ctx, model, TagRetrainLease, mine); err != nil {
		return nil, nil, fmt.Errorf("retraining lease: %w", err)
	}
	if s.cfg.LeaseSettle > 0 {
		t := time.NewTimer(s.cfg.LeaseSettle)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
	rm, err = mlf.GetRegisteredModel(ctx, model)
	if err != nil {
		return nil, nil, fmt.Errorf("retraining lease: read back: %w", err)
	}
	if got := rm.Tags[TagRetrainLease]; got != mine {
		s.m.leases.WithLabelValues("lost_race").Inc()
		other, _ := parseLease(got)
		return nil, nil, fmt.Errorf("model %q: %w (lease taken concurrently by %s)", model, ErrRetrainRunning, other.Owner)
	}
	s.m.leases.WithLabelValues("acquired").Inc()
	runCtx, cancel := context.WithCancelCause(ctx)
	h := &heldLease{s: s, model: model, value: mine, cancel: cancel, done: make(chan struct{})}
	go h.renew(runCtx)
	return runCtx, h, nil
}

// renew extends the lease every leaseTTL/3 until ctx ends; it cancels the run when the
// lease shows another owner.
func (h *heldLease) renew(ctx context.Context) {
	defer close(h.done)
	tick := time.NewTicker(leaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rm, err := h.s.deps.MLflow.GetRegisteredModel(ctx, h.model)
		if err != nil {
			h.s.logger.Warn("retraining lease not renewed; retrying at the next tick", "model", h.model, "err", err)
			continue
		}
		if rm.Tags[TagRetrainLease] != h.value {
			h.s.m.leases.WithLabelValues("lost").Inc()
			h.s.logger.Warn("retraining lease taken over; cancelling the run", "model", h.model, "lease", rm.Tags[TagRetrainLease])
			h.cancel(errLeaseLost)
			return
		}
		next := lease{Owner: h.s.owner, Expiry: h.s.now().Add(leaseTTL)}.String()
		if err := h.s.setModelTag(ctx, h.model, TagRetrainLease, next); err != nil {
			h.s.logger.Warn("retraining lease not renewed; retrying at the next tick", "model", h.model, "err", err)
			continue
		}
		h.value = next
	}
}

// release stops renewing and ends the lease. When completed (a drift-triggered run registered
// a version, promoted or rejected on merit) it first records the completion time, which
// starts the drift cooldown; a manual, failed or skipped run does not. The lease tag is deleted only if it is
// still ours. Errors are logged: the lease expires by itself.
func (h *heldLease) release(ctx context.Context, completed bool) {
	h.cancel(nil)
	<-h.done
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s := h.s
	if completed {
		if err := s.setModelTag(ctx, h.model, TagRetrainLast, s.now().UTC().Format(time.RFC3339Nano)); err != nil {
			s.logger.Error("retrain time not recorded; the drift cooldown will not apply to this run", "model", h.model, "err", err)
		}
	}
	rm, err := s.deps.MLflow.GetRegisteredModel(ctx, h.model)
	if err != nil {
		s.logger.Warn("retraining lease not released; it expires by itself", "model", h.model, "err", err)
		return
	}
	if cur := rm.Tags[TagRetrainLease]; cur != h.value {
		s.logger.Warn("retraining lease was taken over during the run; left to its holder", "model", h.model, "lease", cur)
		return
	}
	if err := s.modelTag(ctx, h.model, TagRetrainLease, nil); err != nil {
		s.logger.Warn("retraining lease not released; it expires by itself", "model", h.model, "err", err)
	}
}
