package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/streaming-mlops/mlops/services/platform/featurespec"
)

// SessionConfig configures the purchase-probability scenario. Zero fields
// take defaults.
type SessionConfig struct {
	// Seed makes the stream reproducible.
	Seed uint64
	// Start is the sim time of the first session. Default: 2026-01-01T00:00:00Z.
	Start time.Time
	// Customers is the population size. Default: 5000.
	Customers int
	// SessionsPerHour is the arrival rate (sim time). Default: 3600.
	SessionsPerHour float64
	// LabelDelay is the time from the end of a session to its purchase
	// label. Default: 30m.
	LabelDelay time.Duration
	// ChurnRate is the probability that a visiting customer has left and a new
	// one (no history) takes their place, so purchase histories stay
	// bounded as in a real shop. Default: 0.02 (about 50 visits a customer);
	// negative: no churn.
	ChurnRate float64
	// Drifts are applied in order of At.
	Drifts []SessionDrift
	// Scenario names a drift scenario (see Scenarios) that starts at
	// ScenarioAt; empty means none. Its drift joins Drifts.
	Scenario string
	// ScenarioAt is the sim time at which Scenario starts. Default: Start.
	ScenarioAt time.Time
}

// SessionDrift changes the session scenario from At on; zero fields leave
// settings unchanged.
type SessionDrift struct {
	At time.Time
	// CartValueScale multiplies cart values.
	CartValueScale float64
	// MobileShare replaces every customer's probability of a mobile session.
	MobileShare float64
	// ConversionShift is added to the purchase log-odds (concept drift: the
	// same features now convert differently).
	ConversionShift float64
	// EngagementScale multiplies every customer's mean product views.
	EngagementScale float64
	// DiscountShare replaces the share of sessions offered a discount
	// (default 0.3).
	DiscountShare float64
	// CartShift is added to the log-odds that a session with product views
	// puts something in the cart.
	CartShift float64
}

// Session is one shopping session with its purchase probability. Its JSON
// form carries the session features; the target is kept out of it.
type Session struct {
	SessionID         string     `json:"session_id"`
	CustomerID        string     `json:"customer_id"`
	PageViews         int        `json:"page_views"`
	ProductViews      int        `json:"product_views"`
	TimeOnSiteSeconds float64    `json:"time_on_site_seconds"`
	CartValue         float64    `json:"cart_value"`
	CartItems         int        `json:"cart_items"`
	PastPurchases     int        `json:"past_purchases"`
	LastPurchaseTime  *time.Time `json:"last_purchase_time,omitempty"`
	IsReturning       bool       `json:"is_returning"`
	IsMobile          bool       `json:"is_mobile"`
	DiscountRatio     float64    `json:"discount_ratio"`
	EventTime         time.Time  `json:"event_time"`

	// Probability is the true purchase probability; Purchased the outcome.
	Probability float64 `json:"-"`
	Purchased   bool    `json:"-"`
}

// PurchaseLabel is the delayed outcome of a session.
type PurchaseLabel struct {
	EventID     string    `json:"event_id"`
	SessionID   string    `json:"session_id"`
	CustomerID  string    `json:"customer_id"`
	Label       float64   `json:"label"`
	Probability float64   `json:"probability"`
	EventTime   time.Time `json:"event_time"`
}

// SessionInput converts a session into the featurespec input.
func SessionInput(s *Session) featurespec.SessionInput {
	in := featurespec.SessionInput{
		Time:          s.EventTime,
		PageViews:     s.PageViews,
		ProductViews:  s.ProductViews,
		TimeOnSite:    time.Duration(s.TimeOnSiteSeconds * float64(time.Second)),
		CartValue:     s.CartValue,
		CartItems:     s.CartItems,
		PastPurchases: s.PastPurchases,
		IsReturning:   s.IsReturning,
		IsMobile:      s.IsMobile,
		DiscountRatio: s.DiscountRatio,
	}
	if s.LastPurchaseTime != nil {
		in.LastPurchase = *s.LastPurchaseTime
	}
	return in
}

type customer struct {
	id           string
	propensity   float64 // hidden log-odds offset
	engagement   float64 // mean product views
	mobile       float64
	visits       int
	purchases    int
	lastPurchase int64 // unix nanos, 0 = never
}

// Sessions generates shopping sessions in event-time order.
type Sessions struct {
	cfg       SessionConfig
	rng       *rand.Rand
	customers []customer
	now       int64
	n         uint64
	prefix    string
	nextDrift int
	cartScale float64
	mobile    float64 // <0: per-customer
	shift     float64
	engage    float64
	discount  float64
	cartShift float64
	born      int // customers created so far (their ids)
	pending   timedQueue[PurchaseLabel]
	labelBuf  []PurchaseLabel
}

// NewSessions returns a session simulator.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	if cfg.Start.IsZero() {
		cfg.Start = DefaultConfig().Start
	}
	if cfg.Customers == 0 {
		cfg.Customers = 5000
	}
	if cfg.SessionsPerHour == 0 {
		cfg.SessionsPerHour = 3600
	}
	if cfg.LabelDelay == 0 {
		cfg.LabelDelay = 30 * time.Minute
	}
	if cfg.ChurnRate == 0 {
		cfg.ChurnRate = 0.02
	}
	var errs []error
	if cfg.Scenario != "" {
		if cfg.ScenarioAt.IsZero() {
			cfg.ScenarioAt = cfg.Start
		}
		d, err := SessionScenarioDrift(cfg.Scenario, cfg.ScenarioAt)
		if err != nil {
			errs = append(errs, err)
		}
		i := len(cfg.Drifts)
		for i > 0 && cfg.Drifts[i-1].At.After(d.At) {
			i--
		}
		cfg.Drifts = slices.Insert(slices.Clone(cfg.Drifts), i, d)
	}
	if cfg.Customers < 1 {
		errs = append(errs, fmt.Errorf("customers %d below 1", cfg.Customers))
	}
	if cfg.SessionsPerHour < 0 || cfg.LabelDelay < 0 {
		errs = append(errs, errors.New("negative rate or label delay"))
	}
	if cfg.ChurnRate >= 1 || math.IsNaN(cfg.ChurnRate) {
		errs = append(errs, fmt.Errorf("churn rate %v must be below 1", cfg.ChurnRate))
	}
	for i, d := range cfg.Drifts {
		if d.At.IsZero() || (i > 0 && d.At.Before(cfg.Drifts[i-1].At)) {
			errs = append(errs, fmt.Errorf("drift %d has no time or is out of order", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5851f42d4c957f2d))
	s := &Sessions{cfg: cfg, rng: rng, now: cfg.Start.UnixNano(), cartScale: 1, mobile: -1, engage: 1, discount: 0.3,
		prefix: "sess-" + strconv.FormatUint(cfg.Seed, 36) + "-"}
	s.customers = make([]customer, cfg.Customers)
	for i := range s.customers {
		s.customers[i] = s.newCustomer()
	}
	return s, nil
}

// newCustomer draws a customer with no history.
func (s *Sessions) newCustomer() customer {
	c := customer{
		id:         "cust-" + pad(s.born, 7),
		propensity: 0.6 * s.rng.NormFloat64(),
		engagement: math.Exp(1.2 + 0.5*s.rng.NormFloat64()),
		mobile:     0.2 + 0.6*s.rng.Float64(),
	}
	s.born++
	return c
}

func (s *Sessions) applyDrifts() {
	for s.nextDrift < len(s.cfg.Drifts) && s.cfg.Drifts[s.nextDrift].At.UnixNano() <= s.now {
		d := s.cfg.Drifts[s.nextDrift]
		s.nextDrift++
		if d.CartValueScale > 0 {
			s.cartScale *= d.CartValueScale
		}
		if d.MobileShare > 0 {
			s.mobile = d.MobileShare
		}
		s.shift += d.ConversionShift
		if d.EngagementScale > 0 {
			s.engage *= d.EngagementScale
		}
		if d.DiscountShare > 0 {
			s.discount = d.DiscountShare
		}
		s.cartShift += d.CartShift
	}
}

// poisson draws from a Poisson distribution (Knuth; fine for small means).
func poisson(rng *rand.Rand, mean float64) int {
	l := math.Exp(-math.Min(mean, 30))
	k, p := 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// purchaseLogit is the true model of the scenario.
func purchaseLogit(ss *Session, c *customer, shift float64) float64 {
	days := float64(featurespec.MaxDaysSincePurchase)
	if ss.LastPurchaseTime != nil {
		days = ss.EventTime.Sub(*ss.LastPurchaseTime).Hours() / 24
	}
	if ss.CartItems == 0 {
		return -5.5 + 0.3*math.Log1p(float64(ss.ProductViews)) + 0.5*c.propensity // a rare buy-now without a cart
	}
	z := -2.2 + 0.3*math.Log1p(float64(ss.ProductViews)) + 0.6*math.Log1p(float64(ss.CartItems)) +
		0.5*math.Log1p(float64(ss.PastPurchases)) - 0.004*math.Min(days, 365) + 0.3*b2f(ss.IsReturning) -
		0.5*b2f(ss.IsMobile) + 4*ss.DiscountRatio + 0.3*math.Log1p(ss.TimeOnSiteSeconds/60) -
		0.004*ss.CartValue/10 + c.propensity + shift
	return z
}

// cartLogit is the log-odds that a session with product views puts something in the cart
// (about one in five: shops see add-to-cart rates of 5–15% of all sessions).
func cartLogit(ss *Session, c *customer, shift float64) float64 {
	return -2.4 + 0.4*math.Log1p(float64(ss.ProductViews)) + 0.6*c.propensity + 2*ss.DiscountRatio + shift
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Next returns the next session and the purchase labels that became due at
// or before its event time (valid until the next call).
func (s *Sessions) Next() (Session, []PurchaseLabel) {
	rng := s.rng
	s.now += int64(rng.ExpFloat64() / s.cfg.SessionsPerHour * float64(time.Hour))
	s.applyDrifts()
	ci := rng.IntN(len(s.customers))
	if rng.Float64() < s.cfg.ChurnRate {
		s.customers[ci] = s.newCustomer()
	}
	c := &s.customers[ci]
	mobileP := c.mobile
	if s.mobile >= 0 {
		mobileP = s.mobile
	}
	ss := Session{
		SessionID:   s.prefix + strconv.FormatUint(s.n, 10),
		CustomerID:  c.id,
		EventTime:   time.Unix(0, s.now).UTC(),
		IsReturning: c.visits > 0,
		IsMobile:    rng.Float64() < mobileP,
	}
	s.n++
	ss.ProductViews = poisson(rng, c.engagement*s.engage)
	ss.PageViews = 1 + ss.ProductViews + poisson(rng, 2)
	ss.TimeOnSiteSeconds = math.Round(float64(ss.PageViews) * (10 + 40*rng.ExpFloat64()))
	if rng.Float64() < s.discount {
		ss.DiscountRatio = math.Round((0.05+0.25*rng.Float64())*100) / 100
	}
	if ss.ProductViews > 0 && rng.Float64() < 1/(1+math.Exp(-cartLogit(&ss, c, s.cartShift))) {
		ss.CartItems = 1 + poisson(rng, 0.3*float64(ss.ProductViews))
		for range ss.CartItems {
			ss.CartValue += math.Exp(3.3 + 0.8*rng.NormFloat64())
		}
		ss.CartValue = round2(ss.CartValue * s.cartScale)
	}
	ss.PastPurchases = c.purchases
	if c.lastPurchase != 0 {
		lp := time.Unix(0, c.lastPurchase).UTC()
		ss.LastPurchaseTime = &lp
	}
	ss.Probability = 1 / (1 + math.Exp(-purchaseLogit(&ss, c, s.shift)))
	ss.Purchased = rng.Float64() < ss.Probability
	c.visits++
	end := s.now + int64(ss.TimeOnSiteSeconds*float64(time.Second))
	if ss.Purchased {
		c.purchases++
		c.lastPurchase = end
	}

	s.labelBuf = s.labelBuf[:0]
	for s.pending.len() > 0 && s.pending.peek().at <= s.now {
		s.labelBuf = append(s.labelBuf, s.pending.pop().v)
	}
	at := end + int64(s.cfg.LabelDelay)
	s.pending.push(timed[PurchaseLabel]{at: at, seq: s.n, v: PurchaseLabel{
		EventID: "label-" + ss.SessionID, SessionID: ss.SessionID, CustomerID: ss.CustomerID,
		Label: b2f(ss.Purchased), Probability: ss.Probability, EventTime: time.Unix(0, at).UTC(),
	}})
	return ss, s.labelBuf
}

// PurchaseDataset generates n sessions and returns their purchase features
// (computed with featurespec.ComputePurchase), the true probability as Y
// and the drawn outcome as Outcome.
func PurchaseDataset(cfg SessionConfig, n int) (*Dataset, error) {
	s, err := NewSessions(cfg)
	if err != nil {
		return nil, err
	}
	return s.Dataset(n)
}

// Dataset draws the next n sessions as a purchase dataset (see PurchaseDataset). The
// simulation goes on after them, so a model trained on the dataset can be served on the
// sessions that follow, from the same shop; their labels stay queued and come out of Next
// and Drain like any other.
func (s *Sessions) Dataset(n int) (*Dataset, error) {
	spec := featurespec.Purchase()
	w := spec.Len()
	d := &Dataset{Spec: spec, X: make([]float64, n*w), Y: make([]float64, n), Outcome: make([]float64, n),
		EventTimes: make([]int64, n), LabelTimes: make([]int64, n)}
	for i := range n {
		ss, _ := s.Next()
		if err := featurespec.ComputePurchase(SessionInput(&ss), d.X[i*w:(i+1)*w]); err != nil {
			return nil, fmt.Errorf("features of simulated session %d: %w", i, err)
		}
		d.Y[i] = ss.Probability
		d.Outcome[i] = b2f(ss.Purchased)
		d.EventTimes[i] = ss.EventTime.UnixNano()
		d.LabelTimes[i] = ss.EventTime.UnixNano() + int64(ss.TimeOnSiteSeconds*float64(time.Second)) + int64(s.cfg.LabelDelay)
	}
	return d, nil
}

// Drain returns the labels not yet emitted, in event-time order.
func (s *Sessions) Drain() []PurchaseLabel {
	var out []PurchaseLabel
	for s.pending.len() > 0 {
		out = append(out, s.pending.pop().v)
	}
	return out
}
