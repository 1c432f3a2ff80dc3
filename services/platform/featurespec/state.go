package featurespec

import "sort"

// Bounds of AccountState. Together they bound its size: at most 1440
// minute buckets (16 bytes each in the binary encoding) and 96 remembered
// keys.
const (
	// HourMinutes and DayMinutes are the window lengths in minutes.
	HourMinutes = 60
	DayMinutes  = 24 * 60
	// MaxMerchants, MaxDevices and MaxCountries cap the remembered keys per
	// account; when full, the least recently seen key is forgotten.
	MaxMerchants = 64
	MaxDevices   = 16
	MaxCountries = 16
)

// AccountState is the online state of one account, everything the fraud
// features need. The zero value is an account without history. It is
// serialisable as JSON and, compactly, with MarshalBinary.
//
// Windows are kept as per-minute buckets over the last 24 hours of event
// time (relative to the newest bucket). This is exact at minute
// resolution, and bounded: there are at most 1440 distinct minutes in a
// day. Counts and sums over 1h and 24h are therefore exact for the window
// definition "the 60 (1440) event-minutes ending with the current
// transaction's minute".
//
// Late (out-of-order) events are accepted: they are bucketed if they fall
// within 24h of the newest bucket, update the running statistics, and do
// not move LastTime or the last location backwards. Compute at a past time
// ignores buckets later than that time, but cannot recover buckets already
// evicted, and the distinct-key counts use each key's latest minute; so
// windows of late events are approximate. Per-account ordering (Kafka keys)
// keeps lateness rare.
//
// AccountState is not safe for concurrent mutation; Compute only reads it.
type AccountState struct {
	// TxCount is the number of transactions applied.
	TxCount uint64 `json:"tx_count"`
	// LastTime is the latest event time applied, unix nanoseconds.
	LastTime int64 `json:"last_time"`
	// LogAmountMean and LogAmountM2 are Welford's running mean and sum of
	// squared deviations of log1p(amount) over TxCount transactions.
	LogAmountMean float64 `json:"log_amount_mean"`
	LogAmountM2   float64 `json:"log_amount_m2"`
	// LocCount is the number of transactions with a location; HomeX/Y/Z is
	// the running mean of their unit vectors (the usual location).
	LocCount uint64  `json:"loc_count"`
	HomeX    float64 `json:"home_x"`
	HomeY    float64 `json:"home_y"`
	HomeZ    float64 `json:"home_z"`
	// LastHasLoc tells whether LastX/Y/Z (unit vector of the latest located
	// transaction, at LastLocTime unix nanoseconds) is set.
	LastHasLoc  bool    `json:"last_has_loc"`
	LastLocTime int64   `json:"last_loc_time"`
	LastX       float64 `json:"last_x"`
	LastY       float64 `json:"last_y"`
	LastZ       float64 `json:"last_z"`
	// Minutes are the per-minute buckets, strictly increasing by Minute.
	Minutes []MinuteBucket `json:"minutes"`
	// Merchants, Devices and Countries are the remembered keys (64-bit
	// FNV-1a hashes of the identifiers), in no particular order.
	Merchants []Seen `json:"merchants"`
	Devices   []Seen `json:"devices"`
	Countries []Seen `json:"countries"`
}

// MinuteBucket aggregates the transactions of one event minute.
type MinuteBucket struct {
	// Minute is unix time divided by 60 (floor).
	Minute int64 `json:"minute"`
	// Count is the number of transactions; Sum the sum of their amounts.
	Count uint32  `json:"count"`
	Sum   float64 `json:"sum"`
}

// Seen is a remembered key: how often it was used and the latest minute.
type Seen struct {
	Key        uint64 `json:"key"`
	LastMinute int64  `json:"last_minute"`
	Uses       uint32 `json:"uses"`
}

// Clone returns a deep copy of s.
func (s *AccountState) Clone() *AccountState {
	c := *s
	c.Minutes = append([]MinuteBucket(nil), s.Minutes...)
	c.Merchants = append([]Seen(nil), s.Merchants...)
	c.Devices = append([]Seen(nil), s.Devices...)
	c.Countries = append([]Seen(nil), s.Countries...)
	return &c
}

// addToMinute adds one transaction to its bucket and evicts buckets that
// left the 24h window of the newest bucket. A transaction older than that
// window is not bucketed.
func (s *AccountState) addToMinute(minute int64, amount float64) {
	n := len(s.Minutes)
	switch {
	case n > 0 && s.Minutes[n-1].Minute == minute:
		b := &s.Minutes[n-1]
		b.Count = satInc(b.Count)
		b.Sum += amount
	case n == 0 || s.Minutes[n-1].Minute < minute:
		s.Minutes = append(s.Minutes, MinuteBucket{Minute: minute, Count: 1, Sum: amount})
	default: // out of order
		if minute <= s.Minutes[n-1].Minute-DayMinutes {
			return
		}
		i := sort.Search(n, func(i int) bool { return s.Minutes[i].Minute >= minute })
		if s.Minutes[i].Minute == minute {
			s.Minutes[i].Count = satInc(s.Minutes[i].Count)
			s.Minutes[i].Sum += amount
		} else {
			s.Minutes = append(s.Minutes, MinuteBucket{})
			copy(s.Minutes[i+1:], s.Minutes[i:])
			s.Minutes[i] = MinuteBucket{Minute: minute, Count: 1, Sum: amount}
		}
	}
	newest := s.Minutes[len(s.Minutes)-1].Minute
	k := 0
	for k < len(s.Minutes) && s.Minutes[k].Minute <= newest-DayMinutes {
		k++
	}
	if k > 0 {
		s.Minutes = append(s.Minutes[:0], s.Minutes[k:]...)
	}
}

func satInc(v uint32) uint32 {
	if v == ^uint32(0) {
		return v
	}
	return v + 1
}

// touch records a use of key at minute in set (capped at max entries,
// evicting the least recently seen, ties broken by the smaller key). Key 0
// (empty identifier) is never remembered.
func touch(set []Seen, key uint64, minute int64, max int) []Seen {
	if key == 0 {
		return set
	}
	for i := range set {
		if set[i].Key == key {
			set[i].Uses = satInc(set[i].Uses)
			if minute > set[i].LastMinute {
				set[i].LastMinute = minute
			}
			return set
		}
	}
	if len(set) < max {
		return append(set, Seen{Key: key, LastMinute: minute, Uses: 1})
	}
	victim := 0
	for i := 1; i < len(set); i++ {
		if set[i].LastMinute < set[victim].LastMinute ||
			(set[i].LastMinute == set[victim].LastMinute && set[i].Key < set[victim].Key) {
			victim = i
		}
	}
	set[victim] = Seen{Key: key, LastMinute: minute, Uses: 1}
	return set
}

func usesOf(set []Seen, key uint64) uint32 {
	if key == 0 {
		return 0
	}
	for i := range set {
		if set[i].Key == key {
			return set[i].Uses
		}
	}
	return 0
}

// countSince counts keys last seen after minute.
func countSince(set []Seen, minute int64) int {
	n := 0
	for i := range set {
		if set[i].LastMinute > minute {
			n++
		}
	}
	return n
}
