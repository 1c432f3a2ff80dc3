// Package store keeps the online state of the fraud features in Redis: per account the
// encoded featurespec.AccountState, a version counter, and the feature vectors of the
// account's most recent transactions (so a replayed transaction is answered with the vector
// it got the first time instead of being counted twice).
//
// Layout, for an account id A and a key prefix P (both namespaced with the same hash tag so
// they live in one Redis Cluster slot):
//
//	P acct:{A}   HASH  v    version, a decimal counter bumped by every write (absent = 0)
//	                   s    featurespec binary encoding of the AccountState (absent = no history)
//	                   t:X  encoded FeatureVector computed for transaction id X
//	P ring:{A}   LIST  transaction ids with a t:X field, newest first; at most Window long,
//	                   except that one write never evicts its own ids
//
// Reads are one HMGET per account (v, s and t:X for the transactions in hand), pipelined
// for a whole batch. Writes are one Lua script per account, pipelined for a whole batch; the
// script is a compare-and-set on v: it applies only if v still has the value that was read
// (and, for a write computed on a remembered state instead of a loaded one, only if s is
// still that state byte for byte and none of the write's transactions has a t:X field),
// sets the new state and vectors, pushes the new ids onto the ring and evicts the vectors of
// ids pushed off its end (never those of the write itself, however many it adds). State and "which transactions were applied" therefore change
// together, atomically, and a writer that lost a race (two replicas during a rebalance, a
// gRPC record call and the stream) learns it and reloads.
package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// ErrBadState is wrapped by Snapshot.Err when an account's stored state cannot be decoded.
var ErrBadState = errors.New("bad stored account state")

// Defaults of Options.
const (
	// DefaultWindow is the default number of recent transactions per account whose vectors
	// are kept for replays: twice kafkaio.DefaultMaxBatch. A redelivery repeats only
	// uncommitted records, at most one batch per partition, and an account's records share a
	// partition; the factor two leaves room for gRPC record calls in between and for a
	// replica still running with a larger batch during a rollout.
	DefaultWindow = 1000
)

// Options configures a Store.
type Options struct {
	// Prefix starts every key, e.g. "mlops:features:fraud-v1:". Tests use a unique one.
	Prefix string
	// Window is how many of an account's most recent transactions are remembered (id and
	// vector): a transaction replayed while it is among them is recognised. A write that adds
	// more transactions than Window keeps all of them (until the next write). It must be at
	// least the most records a consumer handles uncommitted (-kafka.max-batch). Default:
	// DefaultWindow.
	Window int
	// TTL, when positive, expires an account's keys after that long without a write.
	// Default: 0, never.
	TTL time.Duration
}

// Store reads and writes account state in Redis. It is safe for concurrent use; it does not
// own the client (the caller closes it).
type Store struct {
	rdb    redis.Cmdable
	opts   Options
	script *redis.Script
	m      *metrics
}

// New returns a Store on rdb. reg receives mlops_features_redis_duration_seconds and
// mlops_features_state_size_bytes; it may be nil.
func New(rdb redis.Cmdable, opts Options, reg prometheus.Registerer) *Store {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	return &Store{rdb: rdb, opts: opts, script: redis.NewScript(commitScript), m: newMetrics(reg)}
}

// Window is the number of recent transactions per account the store remembers.
func (s *Store) Window() int { return s.opts.Window }

// StateKey and RingKey return the Redis keys of account (exported for tests and operators).
func (s *Store) StateKey(account string) string { return s.opts.Prefix + "acct:{" + account + "}" }

// RingKey returns the key of the list of account's remembered transaction ids.
func (s *Store) RingKey(account string) string { return s.opts.Prefix + "ring:{" + account + "}" }

// VectorField is the hash field holding the vector of transaction id tx.
func VectorField(tx string) string { return "t:" + tx }

// LoadRequest asks for one account's state and the stored vectors of some of its
// transactions.
type LoadRequest struct {
	Account string
	TxIDs   []string
}

// Snapshot is what Load found for one account.
type Snapshot struct {
	// Version is the account's version counter (0 when it has no state).
	Version int64
	// State is the decoded state; the zero value when the account has no history.
	State featurespec.AccountState
	// StateBytes is the size of the encoded state (0 without history).
	StateBytes int
	// Vectors[i] is the stored vector of TxIDs[i] of the request, nil when that transaction
	// was not applied (or has left the window).
	Vectors [][]byte
	// Err is set (wrapping ErrBadState) when the stored state cannot be decoded; the other
	// fields are then unspecified.
	Err error
}

// Load reads the requested accounts in one pipelined round trip into snaps (which must have
// len(reqs) elements; their slices are reused). A non-nil error means Redis could not be
// read (transient); an undecodable state is reported per account in Snapshot.Err.
func (s *Store) Load(ctx context.Context, reqs []LoadRequest, snaps []Snapshot) error {
	if len(snaps) != len(reqs) {
		return fmt.Errorf("load: %d snapshots for %d requests", len(snaps), len(reqs))
	}
	switch len(reqs) {
	case 0:
		return nil
	case 1:
		// One account (the sync path): a plain command, without a pipeline's bookkeeping.
		start := time.Now()
		vals, err := s.rdb.HMGet(ctx, s.StateKey(reqs[0].Account), loadFields(reqs[0])...).Result()
		s.m.load.Observe(time.Since(start).Seconds())
		if err != nil {
			return fmt.Errorf("redis load 1 account: %w", err)
		}
		snaps[0] = decodeSnapshot(reqs[0], vals, snaps[0])
		return nil
	}
	start := time.Now()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(reqs))
	for i, r := range reqs {
		cmds[i] = pipe.HMGet(ctx, s.StateKey(r.Account), loadFields(r)...)
	}
	_, err := pipe.Exec(ctx)
	s.m.load.Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("redis load %d accounts: %w", len(reqs), err)
	}
	for i, r := range reqs {
		snaps[i] = decodeSnapshot(r, cmds[i].Val(), snaps[i])
	}
	return nil
}

// loadFields are the hash fields Load reads for r: v, s and t:X per transaction id.
func loadFields(r LoadRequest) []string {
	fields := make([]string, 0, 2+len(r.TxIDs))
	fields = append(fields, "v", "s")
	for _, tx := range r.TxIDs {
		fields = append(fields, VectorField(tx))
	}
	return fields
}

// decodeSnapshot turns one HMGET reply (v, s, t:...) into a Snapshot, reusing prev's slices.
func decodeSnapshot(r LoadRequest, vals []any, prev Snapshot) Snapshot {
	snap := Snapshot{State: prev.State, Vectors: prev.Vectors[:0]}
	snap.State.Minutes = snap.State.Minutes[:0]
	snap.State.Merchants = snap.State.Merchants[:0]
	snap.State.Devices = snap.State.Devices[:0]
	snap.State.Countries = snap.State.Countries[:0]
	if len(vals) != 2+len(r.TxIDs) {
		snap.Err = fmt.Errorf("%w: account %q: HMGET returned %d values for %d fields", ErrBadState, r.Account, len(vals), 2+len(r.TxIDs))
		return snap
	}
	if v, ok := vals[0].(string); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			snap.Err = fmt.Errorf("%w: account %q: version %q", ErrBadState, r.Account, v)
			return snap
		}
		snap.Version = n
	}
	if st, ok := vals[1].(string); ok {
		snap.StateBytes = len(st)
		if err := snap.State.UnmarshalBinary([]byte(st)); err != nil {
			snap.Err = fmt.Errorf("%w: account %q: %w", ErrBadState, r.Account, err)
			return snap
		}
	} else {
		snap.State = featurespec.AccountState{
			Minutes: snap.State.Minutes, Merchants: snap.State.Merchants,
			Devices: snap.State.Devices, Countries: snap.State.Countries,
		}
	}
	for _, v := range vals[2:] {
		if str, ok := v.(string); ok {
			snap.Vectors = append(snap.Vectors, []byte(str))
		} else {
			snap.Vectors = append(snap.Vectors, nil)
		}
	}
	return snap
}

// Write is one account's compare-and-set update.
type Write struct {
	Account string
	// Version is the version Load returned; the write applies only if it is still current.
	Version int64
	// Base, when not empty, is the encoded state the write was computed from when that state
	// was not loaded but remembered (the Encoded of an earlier applied write). The write then
	// also requires that the stored state is still byte for byte Base and that none of TxIDs
	// has a stored vector (it was not applied already, e.g. by the delivery a redelivery
	// repeats); otherwise it is not applied and the caller reloads. The version alone cannot
	// vouch for a remembered state: the keys may have expired or been deleted and rewritten
	// up to the same version since.
	Base string
	// State is the new state.
	State *featurespec.AccountState
	// TxIDs are the transactions newly applied, oldest first, and Vectors their encoded
	// vectors (same length).
	TxIDs   []string
	Vectors [][]byte
	// Encoded is set by Commit to the encoding of State it sent (whether or not it applied).
	Encoded string
}

// Commit applies writes in one pipelined round trip (plus one to load the script after a
// Redis restart). applied[i] reports whether writes[i] took effect; false means another
// writer changed the account since it was loaded, or, for a write with a Base, that the
// remembered state is not the stored one or a transaction was applied already (reload and
// retry). A non-nil error means
// Redis could not be written (transient); some writes may then have been applied, which a
// retry detects through the version and the stored vectors.
func (s *Store) Commit(ctx context.Context, writes []Write) (applied []bool, err error) {
	applied = make([]bool, len(writes))
	if len(writes) == 0 {
		return applied, nil
	}
	args := make([][]any, len(writes))
	var buf []byte
	for i, w := range writes {
		if len(w.TxIDs) != len(w.Vectors) {
			return nil, fmt.Errorf("commit account %q: %d transaction ids, %d vectors", w.Account, len(w.TxIDs), len(w.Vectors))
		}
		buf, err = w.State.AppendBinary(buf[:0])
		if err != nil {
			return nil, fmt.Errorf("encode state of account %q: %w", w.Account, err)
		}
		s.m.stateSize.Observe(float64(len(buf)))
		writes[i].Encoded = string(buf)
		base := ""
		if w.Base != "" {
			base = stateDigest(w.Base)
		}
		a := make([]any, 0, 5+2*len(w.TxIDs))
		a = append(a, w.Version, writes[i].Encoded, s.opts.Window, s.opts.TTL.Milliseconds(), base)
		for j, tx := range w.TxIDs {
			a = append(a, tx, w.Vectors[j])
		}
		args[i] = a
	}
	todo := make([]int, len(writes))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		noScript, err := s.commitOnce(ctx, writes, args, todo, applied)
		if err != nil {
			return nil, err
		}
		if len(noScript) == 0 {
			return applied, nil
		}
		if attempt > 0 {
			return nil, fmt.Errorf("redis commit: script still missing after loading it")
		}
		// Redis lost its script cache (restart, SCRIPT FLUSH): the script did not run for
		// these writes. Load it and run them again.
		if err := s.script.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("redis load commit script: %w", err)
		}
		todo = noScript
	}
}

// commitOnce runs the script for writes[todo] in one pipeline, records which applied, and
// returns the indexes whose script was missing.
func (s *Store) commitOnce(ctx context.Context, writes []Write, args [][]any, todo []int, applied []bool) (noScript []int, err error) {
	start := time.Now()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(todo))
	for k, i := range todo {
		acct := writes[i].Account
		cmds[k] = s.script.EvalSha(ctx, pipe, []string{s.StateKey(acct), s.RingKey(acct)}, args[i]...)
	}
	_, execErr := pipe.Exec(ctx)
	s.m.commit.Observe(time.Since(start).Seconds())
	for k, i := range todo {
		n, err := cmds[k].Int64()
		switch {
		case err == nil:
			applied[i] = n == 1
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			noScript = append(noScript, i)
		default:
			return nil, fmt.Errorf("redis commit account %q: %w", writes[i].Account, err)
		}
	}
	if execErr != nil && len(noScript) == 0 {
		return nil, fmt.Errorf("redis commit %d accounts: %w", len(todo), execErr)
	}
	return noScript, nil
}

// commitScript is the compare-and-set write of one account.
//
//	KEYS[1] state hash, KEYS[2] ring list
//	ARGV[1] expected version, ARGV[2] encoded state, ARGV[3] window, ARGV[4] TTL in ms (0: none)
//	ARGV[5] "" or the SHA-1 (hex) the stored state must have, and then none of the
//	        transactions may have a stored vector (Write.Base)
//	ARGV[6], ARGV[7], ...: pairs of transaction id and encoded vector, oldest first
//
// It returns 1 when applied and 0 when the version changed since it was read (or, with
// ARGV[5], the state differs or a transaction was applied). The ring keeps at least the ids
// this write adds: they belong to a batch that is not committed to Kafka yet and may be
// redelivered, so evicting any of them would let a redelivery count it twice.
const commitScript = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur ~= tonumber(ARGV[1]) then
  return 0
end
if ARGV[5] ~= '' then
  local st = redis.call('HGET', KEYS[1], 's')
  if not st or redis.sha1hex(st) ~= ARGV[5] then
    return 0
  end
  for i = 6, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[1], 't:' .. ARGV[i]) == 1 then
      return 0
    end
  end
end
redis.call('HSET', KEYS[1], 'v', tostring(cur + 1), 's', ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 't:' .. ARGV[i], ARGV[i + 1])
  redis.call('LPUSH', KEYS[2], ARGV[i])
end
local window = math.max(tonumber(ARGV[3]), (#ARGV - 5) / 2)
local n = redis.call('LLEN', KEYS[2])
while n > window do
  local old = redis.call('RPOP', KEYS[2])
  redis.call('HDEL', KEYS[1], 't:' .. old)
  n = n - 1
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
`

// stateDigest is the SHA-1 (hex) of an encoded state, as the commit script's
// redis.sha1hex computes it.
func stateDigest(encoded string) string {
	sum := sha1.Sum([]byte(encoded))
	return hex.EncodeToString(sum[:])
}

// metrics are the store's instruments.
type metrics struct {
	// load and commit are the two series of mlops_features_redis_duration_seconds, resolved
	// once instead of by label on every round trip.
	load, commit prometheus.Observer
	stateSize    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	dur := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mlops_features_redis_duration_seconds",
		Help:    "Duration of one pipelined Redis round trip of the feature store, by operation (load, commit).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 100µs .. ~2.4s
	}, []string{"op"})
	return &metrics{
		load:   dur.WithLabelValues("load"),
		commit: dur.WithLabelValues("commit"),
		stateSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlops_features_state_size_bytes",
			Help:    "Size of an account's encoded feature state at each write.",
			Buckets: prometheus.ExponentialBuckets(64, 2, 12), // 64 B .. 128 KiB
		}),
	}
}
