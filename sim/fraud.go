package sim

import (
	"math"
	"strconv"
	"time"
)

// episode is one running fraud attack on an account.
type episode struct {
	pattern  Pattern
	acct     int32
	left     int
	device   string
	city     int
	lat, lon float64
	channel  int
	mimic    bool // imitates the victim (see Config.MimicProb)
}

// meanMimicLen is the expected number of transactions of a mimicking episode.
const meanMimicLen = 2

// meanEpisodeLen is the expected number of transactions of an episode.
func meanEpisodeLen(p Pattern) float64 {
	lo, hi := episodeLen(p)
	return float64(lo+hi) / 2
}

// episodeLen is the inclusive range of transactions of an episode.
func episodeLen(p Pattern) (lo, hi int) {
	switch p {
	case PatternAccountTakeover:
		return 3, 8
	case PatternCardTesting:
		return 5, 15
	case PatternGeoJump:
		return 1, 3
	case PatternRiskyDevice:
		return 1, 4
	case PatternBustOut:
		return 4, 10
	}
	return 0, 0
}

func (s *Sim) pickPattern() Pattern {
	var sum float64
	for _, w := range s.weights {
		sum += w
	}
	x := s.rng.Float64() * sum
	for p, w := range s.weights {
		if w > 0 && x < w {
			return Pattern(p)
		}
		x -= w
	}
	for p := numPatterns - 1; p > 0; p-- {
		if s.weights[p] > 0 {
			return p
		}
	}
	return PatternNone
}

func (s *Sim) startEpisode(at int64) (int32, bool) {
	p := s.pickPattern()
	if p == PatternNone {
		return 0, false
	}
	rng := s.rng
	ai := int32(rng.IntN(len(s.w.accounts)))
	a := &s.w.accounts[ai]
	lo, hi := episodeLen(p)
	ep := episode{pattern: p, acct: ai, left: lo + rng.IntN(hi-lo+1)}
	home := &cities[a.home]
	if p != PatternBustOut && rng.Float64() < s.cfg.MimicProb {
		// The fraudster imitates the victim: the victim's own device (remote-access
		// malware, a hijacked session, a cloned card), the victim's home area, fewer and
		// slower transactions.
		ep.mimic = true
		ep.left = 1 + rng.IntN(2*meanMimicLen-1)
		ep.device = a.devices[rng.IntN(len(a.devices))]
		ep.city = a.home
		ep.lat, ep.lon = jitter(rng, a.lat, a.lon, 8)
		ep.channel = channelWeb + rng.IntN(2)
		if p == PatternGeoJump {
			ep.channel = channelPOS
		}
		return s.addEpisode(ep), true
	}
	switch p {
	case PatternAccountTakeover:
		ep.device = s.w.fraudDevices[rng.IntN(len(s.w.fraudDevices))]
		ep.city = s.cityWhere(func(c *city) bool { return c.country != home.country })
		ep.lat, ep.lon = jitter(rng, cities[ep.city].lat, cities[ep.city].lon, 20)
		ep.channel = channelWeb + rng.IntN(2)
	case PatternCardTesting:
		ep.device = s.w.fraudDevices[rng.IntN(len(s.w.fraudDevices))]
		ep.city = s.w.pickCity(rng)
		ep.lat, ep.lon = jitter(rng, cities[ep.city].lat, cities[ep.city].lon, 20)
		ep.channel = channelWeb
	case PatternGeoJump:
		s.skimmers++
		ep.device = "skim-" + strconv.Itoa(s.skimmers)
		ep.city = s.cityWhere(func(c *city) bool { return distanceKm(c.lat, c.lon, a.lat, a.lon) > 3000 })
		ep.lat, ep.lon = jitter(rng, cities[ep.city].lat, cities[ep.city].lon, 10)
		ep.channel = channelPOS
	case PatternRiskyDevice:
		ep.device = s.w.fraudDevices[rng.IntN(len(s.w.fraudDevices))]
		ep.city = a.home
		ep.lat, ep.lon = jitter(rng, a.lat, a.lon, 30)
		ep.channel = channelWeb
	case PatternBustOut:
		ep.device = a.devices[0]
		ep.city = a.home
		ep.lat, ep.lon = a.lat, a.lon
		ep.channel = channelWeb
	}
	return s.addEpisode(ep), true
}

// addEpisode stores ep and returns its index.
func (s *Sim) addEpisode(ep episode) int32 {
	var idx int32
	if n := len(s.freeEp); n > 0 {
		idx = s.freeEp[n-1]
		s.freeEp = s.freeEp[:n-1]
		s.episodes[idx] = ep
	} else {
		idx = int32(len(s.episodes))
		s.episodes = append(s.episodes, ep)
	}
	return idx
}

// cityWhere picks a random city satisfying ok (any city after 50 tries).
func (s *Sim) cityWhere(ok func(*city) bool) int {
	for range 50 {
		c := s.rng.IntN(len(cities))
		if ok(&cities[c]) {
			return c
		}
	}
	return s.rng.IntN(len(cities))
}

// fraudStep produces the next transaction of episode ei at time at, and the
// time of the one after it if the episode continues.
func (s *Sim) fraudStep(ei int32, at int64) (tx txn, next int64, more bool) {
	ep := &s.episodes[ei]
	a := &s.w.accounts[ep.acct]
	rng := s.rng
	var amount float64
	var mi int32
	var gapLo, gapHi time.Duration
	var lat, lon float64 // every case sets them
	switch {
	case ep.mimic:
		// Amounts like the victim's, a little high; half at the victim's own merchants.
		amount = math.Exp(a.mu + 0.5 + a.sigma*rng.NormFloat64())
		if ep.pattern == PatternCardTesting {
			amount = 1 + 19*rng.Float64()
		}
		if rng.Float64() < 0.5 {
			mi = a.merchants[rng.IntN(len(a.merchants))]
		} else if ep.channel == channelPOS {
			cm := s.w.cityMerchants[ep.city]
			mi = cm[rng.IntN(len(cm))]
		} else {
			mi = s.w.onlineMerchants[rng.IntN(len(s.w.onlineMerchants))]
		}
		lat, lon = jitter(rng, a.lat, a.lon, 8)
		gapLo, gapHi = 30*time.Minute, 12*time.Hour
	default:
		amount, mi, gapLo, gapHi, lat, lon = s.patternStep(ep, a)
	}
	amount = math.Max(round2(math.Min(amount, 50000)), 0.01)
	tx = txn{at: at, acct: ep.acct, merchant: mi, amount: amount, lat: lat, lon: lon, city: ep.city,
		channel: ep.channel, device: ep.device, pattern: ep.pattern}
	ep.left--
	if ep.left <= 0 {
		return tx, 0, false
	}
	gap := gapLo + time.Duration(rng.Float64()*float64(gapHi-gapLo))
	return tx, at + int64(gap), true
}

// patternStep draws the amount, merchant, gap range and location of the next
// transaction of a (not mimicking) episode.
func (s *Sim) patternStep(ep *episode, a *account) (amount float64, mi int32, gapLo, gapHi time.Duration, lat, lon float64) {
	rng := s.rng
	lat, lon = ep.lat, ep.lon
	switch ep.pattern {
	case PatternAccountTakeover:
		amount = math.Exp(a.mu + 1.3 + 0.5*rng.NormFloat64())
		mi = s.w.riskyOnline[rng.IntN(len(s.w.riskyOnline))]
		gapLo, gapHi = 20*time.Second, 4*time.Minute
	case PatternCardTesting:
		amount = 0.5 + 2.5*rng.Float64()
		mi = s.w.onlineMerchants[rng.IntN(len(s.w.onlineMerchants))]
		gapLo, gapHi = 5*time.Second, 90*time.Second
	case PatternGeoJump:
		amount = math.Exp(a.mu + 0.8 + 0.5*rng.NormFloat64())
		cm := s.w.cityMerchants[ep.city]
		mi = cm[rng.IntN(len(cm))]
		lat, lon = jitter(rng, ep.lat, ep.lon, 5)
		gapLo, gapHi = 5*time.Minute, 40*time.Minute
	case PatternRiskyDevice:
		amount = math.Exp(a.mu + 0.9 + 0.6*rng.NormFloat64())
		mi = s.w.riskyMerchants[rng.IntN(len(s.w.riskyMerchants))]
		gapLo, gapHi = time.Minute, 20*time.Minute
	case PatternBustOut:
		amount = math.Exp(a.mu + 1.6 + 0.4*rng.NormFloat64())
		mi = s.w.riskyMerchants[rng.IntN(len(s.w.riskyMerchants))]
		lat, lon = jitter(rng, a.lat, a.lon, 8)
		gapLo, gapHi = 10*time.Minute, 60*time.Minute
	}
	return amount, mi, gapLo, gapHi, lat, lon
}
