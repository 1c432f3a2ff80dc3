// Package sim is a seeded, deterministic simulator of payment transactions
// with fraud patterns, delayed labels and drift, and of shopping sessions
// with a purchase-probability target. It feeds load tests (as JSON on
// tx.raw) and builds training sets whose features are computed by
// featurespec exactly as the feature service computes them.
package sim

import (
	"iter"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Sim generates transactions and their labels in event-time order. The
// same Config (including Seed) always yields the same stream. A Sim is not
// safe for concurrent use.
type Sim struct {
	cfg   Config
	rng   *rand.Rand
	w     *world
	sched schedule
	seq   uint64

	episodes []episode
	freeEp   []int32

	// current (drifted) settings
	amountScale    float64
	shiftKm        float64
	newDeviceProb  float64
	fraudRateScale float64
	travelScale    float64
	peakShift      float64
	weights        [numPatterns]float64
	episodeRate    float64 // fraud episodes per second
	nextDrift      int

	txCount  uint64
	idPrefix string
	labels   labelQueue
	labelBuf []Label
	skimmers int
}

const (
	kindLegit uint8 = iota
	kindEpisodeStart
	kindFraudStep
)

// New returns a simulator for cfg; zero fields take their defaults.
func New(cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	s := &Sim{
		cfg:            cfg,
		rng:            rng,
		w:              newWorld(cfg, rng),
		amountScale:    1,
		newDeviceProb:  cfg.NewDeviceProb,
		fraudRateScale: 1,
		travelScale:    1,
		weights:        cfg.PatternWeights,
		idPrefix:       "tx-" + strconv.FormatUint(cfg.Seed, 36) + "-",
	}
	if cfg.StreamSeed != 0 {
		s.rng = rand.New(rand.NewPCG(cfg.StreamSeed, cfg.StreamSeed^0x9e3779b97f4a7c15))
		s.idPrefix = "tx-" + strconv.FormatUint(cfg.Seed, 36) + "." + strconv.FormatUint(cfg.StreamSeed, 36) + "-"
	}
	begin := cfg.Start.Add(-cfg.Warmup).UnixNano()
	for i := range s.w.accounts {
		s.push(item{at: s.nextLegit(&s.w.accounts[i], begin), kind: kindLegit, acct: int32(i)})
	}
	s.updateEpisodeRate()
	if s.episodeRate > 0 {
		s.push(item{at: begin + s.expGap(s.episodeRate), kind: kindEpisodeStart})
	}
	return s, nil
}

// Config returns the effective configuration (defaults filled in).
func (s *Sim) Config() Config { return s.cfg }

func (s *Sim) push(it item) {
	s.seq++
	it.seq = s.seq
	s.sched.push(it)
}

func (s *Sim) expGap(rate float64) int64 {
	return int64(s.rng.ExpFloat64() / rate * 1e9)
}

// nextLegit returns the account's next legitimate transaction time after
// from: a Poisson process thinned outside the account's usual hours.
func (s *Sim) nextLegit(a *account, from int64) int64 {
	t := from
	for {
		t += s.expGap(a.proposal)
		h := float64(t%int64(24*time.Hour)) / float64(time.Hour)
		d := math.Abs(h - math.Mod(a.peakHour+s.peakShift+48, 24))
		d = math.Min(d, 24-d)
		if d <= a.halfWidth || s.rng.Float64() < offHourAccept {
			return t
		}
	}
}

func (s *Sim) updateEpisodeRate() {
	s.episodeRate = 0
	if s.cfg.NoFraud {
		return
	}
	var wsum, lsum float64
	for p, w := range s.weights {
		m := s.cfg.MimicProb
		if Pattern(p) == PatternBustOut {
			m = 0
		}
		wsum += w
		lsum += w * ((1-m)*meanEpisodeLen(Pattern(p)) + m*meanMimicLen)
	}
	if wsum == 0 || lsum == 0 {
		return
	}
	f := math.Min(s.cfg.FraudRate*s.fraudRateScale, 0.9)
	meanLen := lsum / wsum
	legit := s.w.totalRate * (1 + s.cfg.SpreeProb*meanSpreeLen) // sprees add transactions
	s.episodeRate = legit * f / (1 - f) / meanLen
}

func (s *Sim) applyDrifts(now int64) {
	for s.nextDrift < len(s.cfg.Drifts) && s.cfg.Drifts[s.nextDrift].At.UnixNano() <= now {
		d := s.cfg.Drifts[s.nextDrift]
		s.nextDrift++
		if d.AmountScale > 0 {
			s.amountScale *= d.AmountScale
		}
		s.shiftKm += d.LocationShiftKm
		if d.NewDeviceProb > 0 {
			s.newDeviceProb = d.NewDeviceProb
		}
		if d.FraudRateScale > 0 {
			s.fraudRateScale *= d.FraudRateScale
		}
		if d.TravelProbScale > 0 {
			s.travelScale *= d.TravelProbScale
		}
		s.peakShift += d.PeakHourShift
		if d.PatternWeights != [numPatterns]float64{} {
			s.weights = d.PatternWeights
		}
		hadFraud := s.episodeRate > 0
		s.updateEpisodeRate()
		if !hadFraud && s.episodeRate > 0 {
			s.push(item{at: now + s.expGap(s.episodeRate), kind: kindEpisodeStart})
		}
	}
}

// meanSpreeLen is the mean number of purchases of a shopping spree after the first.
const meanSpreeLen = 4

// txn is the internal form of a transaction (no per-transaction strings).
type txn struct {
	at       int64
	acct     int32
	merchant int32
	amount   float64
	lat, lon float64
	city     int
	channel  int
	device   string
	pattern  Pattern
	label    float64 // the reported label: 1 for reported and friendly fraud
	labelAt  int64   // when the label becomes known
}

// step produces the next transaction in event-time order.
func (s *Sim) step() txn {
	for {
		it := s.sched.pop()
		s.applyDrifts(it.at)
		switch it.kind {
		case kindLegit:
			a := &s.w.accounts[it.acct]
			tx := s.legit(it.acct, it.at)
			next := s.nextLegit(a, it.at)
			if a.spreeLeft > 0 {
				next = it.at + int64((1+14*s.rng.Float64())*float64(time.Minute))
			}
			s.push(item{at: next, kind: kindLegit, acct: it.acct})
			s.label(&tx)
			s.txCount++
			return tx
		case kindEpisodeStart:
			if s.episodeRate > 0 {
				s.push(item{at: it.at + s.expGap(s.episodeRate), kind: kindEpisodeStart})
			}
			if ep, ok := s.startEpisode(it.at); ok {
				s.push(item{at: it.at, kind: kindFraudStep, ep: ep})
			}
		case kindFraudStep:
			tx, next, more := s.fraudStep(it.ep, it.at)
			if more {
				s.push(item{at: next, kind: kindFraudStep, ep: it.ep})
			} else {
				s.freeEp = append(s.freeEp, it.ep)
			}
			s.label(&tx)
			s.txCount++
			return tx
		}
	}
}

func (s *Sim) legit(ai int32, at int64) txn {
	a := &s.w.accounts[ai]
	rng := s.rng
	if a.tripCity >= 0 && at >= a.tripUntil {
		a.tripCity = -1
	}
	if a.tripCity < 0 && rng.Float64() < s.cfg.TravelProb*s.travelScale {
		a.tripCity = s.w.pickCity(rng)
		if a.tripCity == a.home {
			a.tripCity = -1
		} else {
			a.tripUntil = at + int64((2+8*rng.Float64())*24*float64(time.Hour))
		}
	}
	ch := channelApp
	x := rng.Float64()
	if x < a.channelCum[0] {
		ch = channelPOS
	} else if x < a.channelCum[1] {
		ch = channelWeb
	}
	spree := a.spreeLeft > 0
	if spree {
		a.spreeLeft--
	} else if rng.Float64() < s.cfg.SpreeProb {
		a.spreeLeft = 2 + rng.IntN(2*meanSpreeLen-3)
	}
	splurge := !spree && rng.Float64() < s.cfg.SplurgeProb
	var mi int32
	switch {
	case spree:
		ch = channelWeb + rng.IntN(2)
		mi = s.w.onlineMerchants[rng.IntN(len(s.w.onlineMerchants))]
	case splurge && rng.Float64() < 0.7:
		mi = s.w.splurgeMerchants[rng.IntN(len(s.w.splurgeMerchants))]
	case ch == channelPOS && a.tripCity >= 0:
		cm := s.w.cityMerchants[a.tripCity]
		mi = cm[rng.IntN(len(cm))]
	case rng.Float64() < 0.85:
		mi = a.merchants[rng.IntN(len(a.merchants))]
	case ch == channelPOS:
		cm := s.w.cityMerchants[a.home]
		mi = cm[rng.IntN(len(cm))]
	default:
		mi = s.w.onlineMerchants[rng.IntN(len(s.w.onlineMerchants))]
	}
	m := &s.w.merchants[mi]
	var lat, lon float64
	cityIdx := a.home
	switch {
	case a.tripCity >= 0:
		cityIdx = a.tripCity
		lat, lon = jitter(rng, cities[cityIdx].lat, cities[cityIdx].lon, 15)
	case ch == channelPOS && m.city >= 0 && m.city != a.home:
		cityIdx = m.city
		lat, lon = jitter(rng, cities[cityIdx].lat, cities[cityIdx].lon, 15)
	default:
		lat, lon = jitter(rng, a.lat, a.lon, 8)
	}
	if s.shiftKm != 0 {
		lon = wrapLon(lon + s.shiftKm/(111.2*math.Max(math.Cos(lat*math.Pi/180), 0.1)))
	}
	dev := a.devices[rng.IntN(len(a.devices))]
	if rng.Float64() < s.newDeviceProb {
		a.newDevCount++
		dev = a.id + "-new-" + strconv.Itoa(a.newDevCount)
		a.devices = append(a.devices, dev)
		if len(a.devices) > 4 {
			a.devices = append(a.devices[:0], a.devices[1:]...)
		}
	}
	amt := math.Exp(a.mu+a.sigma*rng.NormFloat64()) * categories[m.category].priceMul * s.amountScale
	if splurge {
		amt = math.Exp(a.mu+1.2+0.5*rng.NormFloat64()) * s.amountScale
	}
	amt = math.Max(round2(math.Min(amt, 50000)), 0.01)
	return txn{at: at, acct: ai, merchant: mi, amount: amt, lat: lat, lon: lon, city: cityIdx, channel: ch, device: dev}
}

// Next returns the next transaction together with the labels that became
// due at or before its event time, in label event-time order. Those labels
// precede the transaction in the merged stream. The label slice is valid
// until the next call.
func (s *Sim) Next() (Transaction, []Label) {
	t := s.step()
	tx := s.export(t)
	s.labelBuf = s.labelBuf[:0]
	for s.labels.len() > 0 && s.labels.peek().at <= t.at {
		s.labelBuf = append(s.labelBuf, s.labels.pop().v)
	}
	if t.label == 1 || !s.cfg.SkipLegitLabels {
		s.labels.push(s.labelFor(&tx, t))
	}
	return tx, s.labelBuf
}

// Drain returns all labels not yet emitted, in event-time order (the end of
// the stream).
func (s *Sim) Drain() []Label {
	var out []Label
	for s.labels.len() > 0 {
		out = append(out, s.labels.pop().v)
	}
	return out
}

// Events yields n transactions and their labels as one stream in event-time
// order, followed by the labels still pending after the n-th transaction.
func (s *Sim) Events(n int) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for range n {
			tx, labels := s.Next()
			for i := range labels {
				l := labels[i]
				if !yield(Event{Label: &l}) {
					return
				}
			}
			if !yield(Event{Transaction: &tx}) {
				return
			}
		}
		for _, l := range s.Drain() {
			if !yield(Event{Label: &l}) {
				return
			}
		}
	}
}

func (s *Sim) export(t txn) Transaction {
	a := &s.w.accounts[t.acct]
	m := &s.w.merchants[t.merchant]
	c := &cities[t.city]
	return Transaction{
		TransactionID:    s.idPrefix + strconv.FormatUint(s.txCount, 10),
		AccountID:        a.id,
		Amount:           t.amount,
		Currency:         c.currency,
		MerchantID:       m.id,
		MerchantCategory: categories[m.category].name,
		DeviceID:         t.device,
		Country:          c.country,
		Latitude:         t.lat,
		Longitude:        t.lon,
		Channel:          channelNames[t.channel],
		EventTime:        time.Unix(0, t.at).UTC(),
		IsFraud:          t.pattern != PatternNone,
		Pattern:          t.pattern,
		Label:            t.label,
	}
}

// label decides the reported label of t and when it becomes known, like a
// chargeback: most fraud is reported after days, some after weeks, some
// never (labelled 0 when the window closes); a few legitimate online
// purchases are disputed by their own cardholder (friendly fraud), late.
func (s *Sim) label(t *txn) {
	rng := s.rng
	lo, hi := float64(s.cfg.LabelDelayMin), float64(s.cfg.LabelDelayMax)
	logUniform := func(u float64) int64 { return int64(lo * math.Pow(hi/lo, u)) }
	t.label, t.labelAt = 0, t.at+int64(s.cfg.LabelDelayMax)
	x := rng.Float64()
	switch {
	case t.pattern != PatternNone:
		if x >= s.cfg.UnreportedProb {
			t.label, t.labelAt = 1, t.at+logUniform(rng.Float64())
		}
	case t.channel != channelPOS && x < s.cfg.FriendlyFraudProb:
		t.label, t.labelAt = 1, t.at+logUniform(0.5+0.5*rng.Float64())
	}
}

func (s *Sim) labelFor(tx *Transaction, t txn) queuedLabel {
	l := Label{
		EventID:         "label-" + tx.TransactionID,
		TransactionID:   tx.TransactionID,
		AccountID:       tx.AccountID,
		TransactionTime: tx.EventTime,
		EventTime:       time.Unix(0, t.labelAt).UTC(),
		Label:           t.label,
	}
	switch {
	case t.label == 1 && t.pattern != PatternNone:
		l.Pattern = t.pattern.String()
	case t.label == 1:
		l.Pattern = friendlyFraud
	}
	s.seq++
	return queuedLabel{at: t.labelAt, seq: s.seq, v: l}
}

// friendlyFraud is the Pattern of a label disputing a legitimate transaction.
const friendlyFraud = "friendly_fraud"
