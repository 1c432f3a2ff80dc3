package sim

// item is a scheduled simulator action. Ties in time are broken by seq,
// which keeps the order deterministic.
type item struct {
	at   int64
	seq  uint64
	kind uint8
	acct int32
	ep   int32
}

func (a *item) before(b *item) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// schedule is a binary min-heap of items (hand-written: container/heap
// boxes every element in an interface).
type schedule struct{ h []item }

func (q *schedule) push(it item) {
	q.h = append(q.h, it)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.h[i].before(&q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *schedule) pop() item {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.h[r].before(&q.h[l]) {
			m = r
		}
		if !q.h[m].before(&q.h[i]) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}

// timed is an element of a timedQueue: ordered by (at, seq).
type timed[T any] struct {
	at  int64
	seq uint64
	v   T
}

type queuedLabel = timed[Label]

// timedQueue is a min-heap of pending events by (at, seq).
type timedQueue[T any] struct{ h []timed[T] }

type labelQueue = timedQueue[Label]

func (q *timedQueue[T]) len() int { return len(q.h) }

func (q *timedQueue[T]) peek() *timed[T] { return &q.h[0] }

func (q *timedQueue[T]) less(i, j int) bool {
	return q.h[i].at < q.h[j].at || (q.h[i].at == q.h[j].at && q.h[i].seq < q.h[j].seq)
}

func (q *timedQueue[T]) push(l timed[T]) {
	q.h = append(q.h, l)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *timedQueue[T]) pop() timed[T] {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	var zero timed[T]
	q.h[n] = zero
	q.h = q.h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}
