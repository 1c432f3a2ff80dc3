package features

import "sync"

// stateCache remembers, per account, the version and encoded state of the service's own
// latest applied write, so that the next batch of the account can skip loading it from
// Redis: the write computed on it carries it as store.Write.Base, and Redis applies it only
// if the account still has that version and state and none of the write's transactions was
// applied already. Anything else (another writer, an expired or repaired key, a redelivery)
// makes the write fail; the account is then forgotten and reloaded. The cache is therefore
// never trusted, only tried: a stale entry costs one extra round trip, never a wrong state.
//
// It holds at most max entries; when full, an arbitrary entry makes room (accounts are
// keyed by the Kafka partitioner, so a replica sees a fixed share of them and a random
// victim is as good as any). Safe for concurrent use.
type stateCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]cachedState
}

// cachedState is an account's state as the service last wrote it.
type cachedState struct {
	version int64
	encoded string
}

// newStateCache returns a cache of at most max accounts; nil (a cache that remembers
// nothing) when max <= 0.
func newStateCache(max int) *stateCache {
	if max <= 0 {
		return nil
	}
	return &stateCache{max: max, entries: make(map[string]cachedState, min(max, 1024))}
}

// get returns account's entry.
func (c *stateCache) get(account string) (cachedState, bool) {
	if c == nil {
		return cachedState{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[account]
	return e, ok
}

// put remembers account's state after a write of the service applied it.
func (c *stateCache) put(account string, version int64, encoded string) {
	if c == nil || encoded == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[account]; !ok && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[account] = cachedState{version: version, encoded: encoded}
}

// forget drops account's entry (its write failed, or its outcome is unknown).
func (c *stateCache) forget(account string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, account)
}
