package window

import "slices"

// Sample is a bottom-k sample: of all the rows offered, it keeps the k rows whose keys hash
// lowest. Keys are hashed with a fixed function, so the kept set depends only on the set of
// keys offered, not on their order or on how they were split between replicas: merging the
// samples of disjoint (or overlapping) streams gives exactly the sample of their union. A key
// offered twice (a redelivered record) is kept once. Rows are a fixed number of float64s.
//
// A Sample is not safe for concurrent use.
type Sample struct {
	k, width int
	// heap is a max-heap of slots by hash: heap[0] is the highest kept hash.
	heap   []int32
	hashes []uint64
	values []float64 // slot i holds values[i*width:(i+1)*width]
	index  map[uint64]int32
}

// NewSample returns an empty sample that keeps at most k rows of width values.
func NewSample(k, width int) *Sample {
	return &Sample{k: k, width: width, index: make(map[uint64]int32, min(k, 1<<12))}
}

// Len returns the number of rows kept.
func (s *Sample) Len() int { return len(s.hashes) }

// Cap returns k.
func (s *Sample) Cap() int { return s.k }

// Offer adds the row with the given key hash unless the sample is full of lower hashes or
// already holds that hash. row is copied.
func (s *Sample) Offer(hash uint64, row []float64) {
	if s.k <= 0 {
		return
	}
	if len(s.hashes) == s.k && hash >= s.hashes[s.heap[0]] {
		return
	}
	if _, dup := s.index[hash]; dup {
		return
	}
	if len(s.hashes) < s.k {
		slot := int32(len(s.hashes))
		s.hashes = append(s.hashes, hash)
		s.values = append(s.values, row[:s.width]...)
		s.index[hash] = slot
		s.heap = append(s.heap, slot)
		s.up(len(s.heap) - 1)
		return
	}
	slot := s.heap[0]
	delete(s.index, s.hashes[slot])
	s.hashes[slot] = hash
	copy(s.values[int(slot)*s.width:], row[:s.width])
	s.index[hash] = slot
	s.down(0)
}

// Merge offers every row of o (which must have the same width) to s.
func (s *Sample) Merge(o *Sample) {
	for i, h := range o.hashes {
		s.Offer(h, o.values[i*o.width:(i+1)*o.width])
	}
}

// Rows returns the kept rows ordered by hash, so that every computation over them is
// deterministic whatever the order the rows arrived in. The returned slices alias a fresh
// copy.
func (s *Sample) Rows() (hashes []uint64, rows [][]float64) {
	order := make([]int32, len(s.hashes))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		switch ha, hb := s.hashes[a], s.hashes[b]; {
		case ha < hb:
			return -1
		case ha > hb:
			return 1
		}
		return 0
	})
	flat := make([]float64, len(s.values))
	hashes = make([]uint64, len(order))
	rows = make([][]float64, len(order))
	for i, slot := range order {
		hashes[i] = s.hashes[slot]
		row := flat[i*s.width : (i+1)*s.width]
		copy(row, s.values[int(slot)*s.width:])
		rows[i] = row
	}
	return hashes, rows
}

// Column returns column j of the kept rows, sorted ascending, without NaN and ±Inf.
func (s *Sample) Column(j int) []float64 {
	out := make([]float64, 0, len(s.hashes))
	for i := range s.hashes {
		v := s.values[i*s.width+j]
		if isFinite(v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// Bytes returns the memory the sample holds at capacity, for reporting.
func (s *Sample) Bytes() int64 {
	return int64(s.k) * int64(8*s.width+8+4+16)
}

func (s *Sample) less(i, j int) bool { return s.hashes[s.heap[i]] > s.hashes[s.heap[j]] }

func (s *Sample) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.heap[i], s.heap[p] = s.heap[p], s.heap[i]
		i = p
	}
}

func (s *Sample) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && s.less(r, l) {
			c = r
		}
		if !s.less(c, i) {
			return
		}
		s.heap[i], s.heap[c] = s.heap[c], s.heap[i]
		i = c
	}
}

// Hash maps a record key (a transaction id) to the 64-bit hash the samples order by:
// FNV-1a followed by a SplitMix64 finaliser, fixed forever so replicas agree.
func Hash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
