package sim_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/sim"
)

// TestSessionsAddDriftMidRun: a scenario added to a running session simulation changes the
// sessions after it exactly as the same scenario configured up front at that time would.
func TestSessionsAddDriftMidRun(t *testing.T) {
	t.Parallel()
	for _, name := range sim.Scenarios() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const n, switchAt = 4000, 1500
			live, err := sim.NewSessions(sim.SessionConfig{Seed: 9, Customers: 300})
			if err != nil {
				t.Fatal(err)
			}
			var got []sim.Session
			var at time.Time
			for i := range n {
				s, _ := live.Next()
				got = append(got, s)
				if i == switchAt {
					at = s.EventTime
					d, err := sim.SessionScenarioDrift(name, at)
					if err != nil {
						t.Fatal(err)
					}
					if err := live.AddDrift(d); err != nil {
						t.Fatal(err)
					}
				}
			}
			planned, err := sim.NewSessions(sim.SessionConfig{Seed: 9, Customers: 300, Scenario: name, ScenarioAt: at.Add(time.Nanosecond)})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				s, _ := planned.Next()
				if !reflect.DeepEqual(s, got[i]) {
					t.Fatalf("session %d differs from the planned scenario's:\n got %+v\nwant %+v", i, got[i], s)
				}
			}
			if err := live.AddDrift(sim.SessionDrift{}); err == nil {
				t.Error("AddDrift accepted a drift without a time")
			}
			if err := live.AddDrift(sim.SessionDrift{At: at, MobileShare: 1.5}); err == nil {
				t.Error("AddDrift accepted a mobile share above 1")
			}
		})
	}
}

// TestSessionsSeasonSwitch: after the season starts mid-run, sessions are more mobile, more
// often discounted and more engaged.
func TestSessionsSeasonSwitch(t *testing.T) {
	t.Parallel()
	ss, err := sim.NewSessions(sim.SessionConfig{Seed: 11, Customers: 500})
	if err != nil {
		t.Fatal(err)
	}
	type agg struct{ n, mobile, discounted, views float64 }
	var before, after agg
	for i := range 20000 {
		s, _ := ss.Next()
		a := &before
		if i >= 10000 {
			a = &after
		}
		if i == 10000 {
			d, _ := sim.SessionScenarioDrift(sim.ScenarioSeason, s.EventTime)
			if err := ss.AddDrift(d); err != nil {
				t.Fatal(err)
			}
		}
		a.n++
		if s.IsMobile {
			a.mobile++
		}
		if s.DiscountRatio > 0 {
			a.discounted++
		}
		a.views += float64(s.ProductViews)
	}
	t.Logf("mobile %.3f -> %.3f, discounted %.3f -> %.3f, product views %.2f -> %.2f", before.mobile/before.n, after.mobile/after.n,
		before.discounted/before.n, after.discounted/after.n, before.views/before.n, after.views/after.n)
	if after.mobile/after.n < 0.7 || after.discounted/after.n < 0.55 || after.views/after.n < 1.5*before.views/before.n {
		t.Errorf("season switched on mid-run: mobile %.3f (want >= 0.7), discounted %.3f (want >= 0.55), product views x%.2f (want >= 1.5)",
			after.mobile/after.n, after.discounted/after.n, (after.views/after.n)/(before.views/before.n))
	}
}
