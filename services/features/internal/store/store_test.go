package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/streaming-mlops/mlops/services/features/internal/store"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
	"github.com/streaming-mlops/mlops/services/platform/stacktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testStore(t *testing.T, opts store.Options) (*store.Store, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: stacktest.RedisAddr(t)})
	opts.Prefix = kafkaiotest.UniqueName("test:store") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, opts.Prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete test keys: %v", err)
		}
		if err := rdb.Close(); err != nil {
			t.Error(err)
		}
	})
	return store.New(rdb, opts, prometheus.NewRegistry()), rdb
}

// state returns an AccountState after applying n transactions.
func state(t *testing.T, n int) *featurespec.AccountState {
	t.Helper()
	s := &featurespec.AccountState{}
	for i := range n {
		in := featurespec.Input{Amount: float64(10 + i), Time: time.Unix(1_700_000_000+int64(i)*90, 0), MerchantID: "m" + strconv.Itoa(i%3)}
		if err := featurespec.Apply(s, in); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func load(t *testing.T, s *store.Store, account string, txs ...string) store.Snapshot {
	t.Helper()
	snaps := make([]store.Snapshot, 1)
	if err := s.Load(context.Background(), []store.LoadRequest{{Account: account, TxIDs: txs}}, snaps); err != nil {
		t.Fatal(err)
	}
	return snaps[0]
}

func commit(t *testing.T, s *store.Store, ws ...store.Write) []bool {
	t.Helper()
	ok, err := s.Commit(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestLoadCommitRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t, store.Options{})
	empty := load(t, s, "a", "tx1")
	if empty.Version != 0 || empty.State.TxCount != 0 || empty.Vectors[0] != nil || empty.Err != nil {
		t.Fatalf("new account: %+v", empty)
	}
	st := state(t, 3)
	if got := commit(t, s, store.Write{Account: "a", Version: 0, State: st, TxIDs: []string{"tx1", "tx2"}, Vectors: [][]byte{[]byte("v1"), []byte("v2")}}); !got[0] {
		t.Fatal("first commit not applied")
	}
	snap := load(t, s, "a", "tx2", "tx3", "tx1")
	if snap.Version != 1 {
		t.Errorf("version %d, want 1", snap.Version)
	}
	if diff := cmp.Diff(st, &snap.State); diff != "" {
		t.Errorf("state (-committed +loaded):\n%s", diff)
	}
	if diff := cmp.Diff([][]byte{[]byte("v2"), nil, []byte("v1")}, snap.Vectors); diff != "" {
		t.Errorf("vectors (-want +got):\n%s", diff)
	}
}

func TestCommitIsCompareAndSet(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t, store.Options{})
	w := func(version int64, tx string) store.Write {
		return store.Write{Account: "a", Version: version, State: state(t, 1), TxIDs: []string{tx}, Vectors: [][]byte{[]byte(tx)}}
	}
	// Two writers both loaded version 0; only the first commit applies. A batch mixing a
	// stale and a fresh write applies the fresh one only.
	if got := commit(t, s, w(0, "tx1"), store.Write{Account: "b", State: state(t, 2)}); !got[0] || !got[1] {
		t.Fatalf("first commits applied = %v", got)
	}
	if got := commit(t, s, w(0, "tx2"), store.Write{Account: "b", Version: 1, State: state(t, 3)}); got[0] || !got[1] {
		t.Fatalf("stale and fresh commits applied = %v, want [false true]", got)
	}
	snap := load(t, s, "a", "tx1", "tx2")
	if snap.Version != 1 || snap.Vectors[0] == nil || snap.Vectors[1] != nil {
		t.Errorf("after the lost race: version %d vectors %q", snap.Version, snap.Vectors)
	}
	if got := load(t, s, "b"); got.Version != 2 || got.State.TxCount != 3 {
		t.Errorf("b: version %d TxCount %d", got.Version, got.State.TxCount)
	}
}

func TestWindowEvictsOldestVectors(t *testing.T) {
	t.Parallel()
	s, rdb := testStore(t, store.Options{Window: 3, TTL: time.Hour})
	for i := range 5 {
		tx := "tx" + strconv.Itoa(i)
		if !commit(t, s, store.Write{Account: "a", Version: int64(i), State: state(t, i+1), TxIDs: []string{tx}, Vectors: [][]byte{[]byte(tx)}})[0] {
			t.Fatalf("commit %d not applied", i)
		}
	}
	// A write with more new transactions than the window keeps all of them: they are one
	// uncommitted batch that may be redelivered. The next write trims back to the window.
	if !commit(t, s, store.Write{Account: "b", State: state(t, 4), TxIDs: []string{"x0", "x1", "x2", "x3"}, Vectors: [][]byte{{0}, {1}, {2}, {3}}})[0] {
		t.Fatal("commit b not applied")
	}
	if !commit(t, s, store.Write{Account: "c", State: state(t, 4), TxIDs: []string{"y0", "y1", "y2", "y3"}, Vectors: [][]byte{{0}, {1}, {2}, {3}}})[0] {
		t.Fatal("commit c not applied")
	}
	if !commit(t, s, store.Write{Account: "c", Version: 1, State: state(t, 5), TxIDs: []string{"y4"}, Vectors: [][]byte{{4}}})[0] {
		t.Fatal("second commit c not applied")
	}
	ctx := context.Background()
	tests := []struct {
		account  string
		ring     []string
		present  []string
		evicted  []string
		wantKeys int64
	}{
		{"a", []string{"tx4", "tx3", "tx2"}, []string{"tx2", "tx3", "tx4"}, []string{"tx0", "tx1"}, 5},
		{"b", []string{"x3", "x2", "x1", "x0"}, []string{"x0", "x1", "x2", "x3"}, nil, 6},
		{"c", []string{"y4", "y3", "y2"}, []string{"y2", "y3", "y4"}, []string{"y0", "y1"}, 5},
	}
	for _, tt := range tests {
		ring, err := rdb.LRange(ctx, s.RingKey(tt.account), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.ring, ring); diff != "" {
			t.Errorf("%s ring (-want +got):\n%s", tt.account, diff)
		}
		if n := rdb.HLen(ctx, s.StateKey(tt.account)).Val(); n != tt.wantKeys {
			t.Errorf("%s hash has %d fields, want %d (v, s and the window's vectors)", tt.account, n, tt.wantKeys)
		}
		snap := load(t, s, tt.account, append(tt.present, tt.evicted...)...)
		for i, v := range snap.Vectors {
			if (i < len(tt.present)) != (v != nil) {
				t.Errorf("%s: vector %d present = %v", tt.account, i, v != nil)
			}
		}
		for _, k := range []string{s.StateKey(tt.account), s.RingKey(tt.account)} {
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("%s TTL %v, want (0, 1h]", k, ttl)
			}
		}
	}
}

func TestLoadReportsBadState(t *testing.T) {
	t.Parallel()
	s, rdb := testStore(t, store.Options{})
	ctx := context.Background()
	good, err := state(t, 2).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		fields []any
	}{
		{"garbage state", []any{"v", "1", "s", "nonsense"}},
		{"truncated state", []any{"v", "1", "s", good[:len(good)-3]}},
		{"bad version", []any{"v", "x", "s", good}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acct := tt.name
			if err := rdb.HSet(ctx, s.StateKey(acct), tt.fields...).Err(); err != nil {
				t.Fatal(err)
			}
			if snap := load(t, s, acct, "tx"); !errors.Is(snap.Err, store.ErrBadState) {
				t.Errorf("Load() Err = %v, want ErrBadState", snap.Err)
			}
		})
	}
}

func TestLoadRedisDown(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: servicetest.FreeAddr(t), MaxRetries: -1})
	defer rdb.Close()
	s := store.New(rdb, store.Options{Prefix: "x:"}, nil)
	if err := s.Load(context.Background(), []store.LoadRequest{{Account: "a"}}, make([]store.Snapshot, 1)); err == nil {
		t.Error("Load with Redis down = nil error")
	}
	if _, err := s.Commit(context.Background(), []store.Write{{Account: "a", State: state(t, 1)}}); err == nil {
		t.Error("Commit with Redis down = nil error")
	}
}

// TestCommitAfterScriptFlush checks that a Redis that lost its script cache (a restart) is
// handled: the script is loaded again and the writes are applied once. It uses a private
// redis-server so the shared one's script cache is left alone.
func TestCommitAfterScriptFlush(t *testing.T) {
	t.Parallel()
	bin := stacktest.Binary(t, "redis-server")
	addr := servicetest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	kafkaiotest.WaitFor(t, 10*time.Second, "private redis-server", func() (bool, error) {
		err := rdb.Ping(ctx).Err()
		return err == nil, err
	})
	s := store.New(rdb, store.Options{Prefix: "p:"}, nil)
	for i := range 3 {
		if i == 2 {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		w := store.Write{Account: "a", Version: int64(i), State: state(t, i+1), TxIDs: []string{fmt.Sprint(i)}, Vectors: [][]byte{{byte(i)}}}
		if got := commit(t, s, w); !got[0] {
			t.Fatalf("commit %d not applied", i)
		}
	}
	if snap := load(t, s, "a"); snap.Version != 3 || snap.State.TxCount != 3 {
		t.Errorf("version %d TxCount %d, want 3 and 3", snap.Version, snap.State.TxCount)
	}
}

// TestCommitWithBase checks the write computed on a remembered state (Write.Base): it applies
// only while the stored state is byte for byte the remembered one, at the same version, and
// none of its transactions was applied already.
func TestCommitWithBase(t *testing.T) {
	t.Parallel()
	s, rdb := testStore(t, store.Options{})
	ctx := context.Background()
	first := store.Write{Account: "a", Version: 0, State: state(t, 2), TxIDs: []string{"tx1"}, Vectors: [][]byte{[]byte("v1")}}
	ws := []store.Write{first}
	if got := commit(t, s, ws...); !got[0] {
		t.Fatal("first commit not applied")
	}
	base := ws[0].Encoded
	if stored := rdb.HGet(ctx, s.StateKey("a"), "s").Val(); stored != base || base == "" {
		t.Fatalf("Encoded %q is not the stored state %q", base, stored)
	}
	next := func(tx string) store.Write {
		return store.Write{Account: "a", Version: 1, Base: base, State: state(t, 3), TxIDs: []string{tx}, Vectors: [][]byte{[]byte(tx)}}
	}
	// A transaction of the remembered write again (a redelivery): refused, nothing changes.
	if got := commit(t, s, next("tx1")); got[0] {
		t.Error("write with Base applied although its transaction has a stored vector")
	}
	// The key deleted (expired, or removed by an operator) and rewritten by another writer up
	// to the same version with another state: the version matches, the state does not.
	if err := rdb.Del(ctx, s.StateKey("a"), s.RingKey("a")).Err(); err != nil {
		t.Fatal(err)
	}
	if got := commit(t, s, store.Write{Account: "a", Version: 0, State: state(t, 5), TxIDs: []string{"other"}, Vectors: [][]byte{[]byte("o")}}); !got[0] {
		t.Fatal("rewrite not applied")
	}
	if got := commit(t, s, next("tx2")); got[0] {
		t.Error("write with Base applied on another state of the same version")
	}
	if snap := load(t, s, "a", "tx2"); snap.Version != 1 || snap.State.TxCount != 5 || snap.Vectors[0] != nil {
		t.Errorf("after the refused write: version %d, %d transactions, vector %q; want 1, 5, none", snap.Version, snap.State.TxCount, snap.Vectors[0])
	}
	// Back to the remembered state (as the same writer would have left it): applied.
	if err := rdb.HSet(ctx, s.StateKey("a"), "s", base).Err(); err != nil {
		t.Fatal(err)
	}
	if got := commit(t, s, next("tx2")); !got[0] {
		t.Error("write with Base refused although the stored state is the remembered one")
	}
	if snap := load(t, s, "a", "tx2"); snap.Version != 2 || snap.State.TxCount != 3 || string(snap.Vectors[0]) != "tx2" {
		t.Errorf("after the write: version %d, %d transactions, vector %q; want 2, 3, tx2", snap.Version, snap.State.TxCount, snap.Vectors[0])
	}
	// A stale version is refused as without Base.
	if got := commit(t, s, next("tx3")); got[0] {
		t.Error("write with Base applied at a stale version")
	}
}
