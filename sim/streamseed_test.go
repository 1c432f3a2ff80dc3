package sim_test

import (
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/sim"
)

// TestStreamSeedSameBankOtherTransactions: with the same Seed a different StreamSeed keeps the
// bank (the accounts that transact) and changes the transactions; without it a later Start
// replays the same transactions shifted in time.
func TestStreamSeedSameBankOtherTransactions(t *testing.T) {
	t.Parallel()
	draw := func(streamSeed uint64, start time.Time) (accounts map[string]bool, txs []sim.Transaction) {
		s, err := sim.New(sim.Config{Seed: 5, StreamSeed: streamSeed, Accounts: 200, Start: start})
		if err != nil {
			t.Fatal(err)
		}
		accounts = map[string]bool{}
		for range 5000 {
			tx, _ := s.Next()
			accounts[tx.AccountID] = true
			txs = append(txs, tx)
		}
		return accounts, txs
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, x := draw(0, t0)
	_, shifted := draw(0, t0.Add(30*24*time.Hour))
	b, y := draw(9, t0)
	same := 0
	for i := range x {
		if x[i].Amount == shifted[i].Amount && x[i].MerchantID == shifted[i].MerchantID {
			same++
		}
	}
	if same != len(x) {
		t.Errorf("a later Start without a stream seed replayed %d of %d transactions, want all", same, len(x))
	}
	same = 0
	for i := range x {
		if x[i].Amount == y[i].Amount {
			same++
		}
	}
	if same > len(x)/100 {
		t.Errorf("another stream seed repeated %d of %d amounts", same, len(x))
	}
	for acct := range b {
		if !a[acct] {
			t.Fatalf("account %s of the other stream is not in the bank", acct)
		}
	}
	if x[0].TransactionID == y[0].TransactionID {
		t.Errorf("both streams name their first transaction %s", x[0].TransactionID)
	}
}
