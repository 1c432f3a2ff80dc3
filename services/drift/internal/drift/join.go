package drift

// pending is a scored prediction waiting for its label.
type pending struct {
	model     string
	score     float64
	threshold float64
	amount    float64
	eventTime int64
	version   float64 // model version number; NaN when not a number
}

// joiner keeps predictions until their label arrives, bounded in entries and in event-time
// age: entries leave in insertion order once there are more than maxEntries or once the
// newest prediction is more than maxAge newer. It is not safe for concurrent use.
type joiner struct {
	maxEntries int
	maxAge     int64
	byTx       map[string]pending
	order      []string // insertion order (a queue; head advances)
	head       int
	newest     int64
	// evictedSize and evictedAge count entries dropped by each limit.
	evictedSize, evictedAge int64

	// early holds labels that arrived before their prediction (in a compressed test, or when
	// the label path is faster than scoring), bounded by maxEarly in insertion order.
	early      map[string]earlyLabel
	earlyOrder []string
	maxEarly   int
}

// earlyLabel is a label waiting for its prediction.
type earlyLabel struct {
	label     float64
	eventTime int64 // when it became known; 0 if unset
}

func newJoiner(maxEntries int, maxAge int64) *joiner {
	return &joiner{maxEntries: maxEntries, maxAge: maxAge, byTx: map[string]pending{},
		early: map[string]earlyLabel{}, maxEarly: max(maxEntries/10, 1)}
}

// park keeps a label whose prediction has not been seen; it returns false when the oldest
// parked label had to make room (that one is lost to the join and counted by the caller).
func (j *joiner) park(key string, l earlyLabel) (evicted bool) {
	if _, ok := j.early[key]; !ok {
		j.earlyOrder = append(j.earlyOrder, key)
	}
	j.early[key] = l
	for len(j.early) > j.maxEarly && len(j.earlyOrder) > 0 {
		old := j.earlyOrder[0]
		j.earlyOrder = j.earlyOrder[1:]
		if _, ok := j.early[old]; ok {
			delete(j.early, old)
			evicted = true
		}
	}
	if len(j.earlyOrder) > 2*j.maxEarly {
		kept := j.earlyOrder[:0]
		for _, k := range j.earlyOrder {
			if _, ok := j.early[k]; ok {
				kept = append(kept, k)
			}
		}
		j.earlyOrder = kept
	}
	return evicted
}

// claim returns and forgets the parked label of key.
func (j *joiner) claim(key string) (earlyLabel, bool) {
	l, ok := j.early[key]
	if ok {
		delete(j.early, key)
	}
	return l, ok
}

// put records a prediction; a second prediction of the same transaction replaces the first.
func (j *joiner) put(tx string, p pending) {
	if _, ok := j.byTx[tx]; !ok {
		j.order = append(j.order, tx)
	}
	j.byTx[tx] = p
	j.newest = max(j.newest, p.eventTime)
	j.evict()
}

// take returns and forgets the prediction of tx.
func (j *joiner) take(tx string) (pending, bool) {
	p, ok := j.byTx[tx]
	if ok {
		delete(j.byTx, tx)
	}
	return p, ok
}

// Len is the number of predictions waiting.
func (j *joiner) Len() int { return len(j.byTx) }

func (j *joiner) evict() {
	for j.head < len(j.order) {
		tx := j.order[j.head]
		p, live := j.byTx[tx]
		switch {
		case !live: // already labelled
		case len(j.byTx) > j.maxEntries:
			delete(j.byTx, tx)
			j.evictedSize++
		case j.newest-p.eventTime > j.maxAge:
			delete(j.byTx, tx)
			j.evictedAge++
		default:
			j.compact()
			return
		}
		j.order[j.head] = ""
		j.head++
	}
	j.compact()
}

// compact drops the consumed head of the queue once it dominates the slice.
func (j *joiner) compact() {
	if j.head > 1024 && j.head*2 > len(j.order) {
		j.order = append(j.order[:0], j.order[j.head:]...)
		j.head = 0
	}
}
