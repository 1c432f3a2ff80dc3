package predlog_test

import (
	"strings"
	"testing"
	"time"

	"github.com/streaming-mlops/mlops/services/predlog/internal/predlog"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c predlog.Config)
		wantErr []string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c predlog.Config) {
				if c.ESURL != "http://127.0.0.1:9200" || c.Writer.IndexPrefix != "predictions" ||
					c.Writer.PendingIndex != "predlog-pending-labels" || c.Writer.LabelMaxDelay != 180*24*time.Hour ||
					c.Writer.PendingMaxAge != 7*24*time.Hour || c.ESDialTimeout != 5*time.Second ||
					c.Writer.RefreshInterval != predlog.DefaultRefreshInterval || c.Writer.BulkInFlight != predlog.DefaultBulkInFlight {
					t.Errorf("defaults: %+v", c)
				}
				if strings.Join(c.Kafka.Topics, ",") != "predictions.v1,labels.v1" || c.Kafka.GroupID != "predlog" ||
					c.Kafka.BatchWait != predlog.DefaultBatchWait {
					t.Errorf("kafka defaults: topics %v group %q batch wait %v", c.Kafka.Topics, c.Kafka.GroupID, c.Kafka.BatchWait)
				}
			},
		},
		{
			name: "batch_wait_off",
			env:  map[string]string{"KAFKA_BATCH_WAIT": "0s"},
			check: func(t *testing.T, c predlog.Config) {
				if c.Kafka.BatchWait != 0 {
					t.Errorf("KAFKA_BATCH_WAIT=0s: batch wait %v", c.Kafka.BatchWait)
				}
			},
		},
		{
			name: "flag_over_env",
			args: []string{"-es.index-prefix", "preds"},
			env: map[string]string{"ES_INDEX_PREFIX": "other", "ES_URL": "http://es:9200", "LABEL_MAX_DELAY": "720h", "LABEL_PENDING_MAX_AGE": "48h", "ES_DIAL_TIMEOUT": "2s",
				"ES_REFRESH_INTERVAL": "30s", "ES_BULK_IN_FLIGHT": "3"},
			check: func(t *testing.T, c predlog.Config) {
				if c.Writer.IndexPrefix != "preds" || c.ESURL != "http://es:9200" || c.Writer.LabelMaxDelay != 720*time.Hour ||
					c.Writer.PendingMaxAge != 48*time.Hour || c.ESDialTimeout != 2*time.Second ||
					c.Writer.RefreshInterval != "30s" || c.Writer.BulkInFlight != 3 {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "invalid",
			args: []string{"-es.url", "nohost", "-es.timeout", "0s", "-es.dial-timeout", "0s", "-label.max-delay", "-1h", "-label.pending-max-age", "0s", "-kafka.topics", "predictions.v1,other",
				"-es.refresh-interval", "-1", "-es.bulk-in-flight", "0"},
			wantErr: []string{"elasticsearch URL", "elasticsearch timeout", "elasticsearch dial timeout", "label max delay", "label pending max age", `"other"`,
				`refresh interval "-1"`, "bulk requests in flight 0"},
		},
		{
			name:    "same_topics",
			args:    []string{"-labels.topic", "predictions.v1", "-kafka.topics", "predictions.v1"},
			wantErr: []string{"both"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := predlog.ParseConfig(tt.args, func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("ParseConfig = nil error, want one")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestIndexFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		at   time.Time
		want string
	}{
		{name: "utc", at: time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC), want: "predictions-2026.11"},
		{name: "offset_crosses_month", at: time.Date(2026, 12, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), want: "predictions-2026.11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := predlog.IndexFor("predictions", tt.at); got != tt.want {
				t.Errorf("IndexFor(%v) = %q, want %q", tt.at, got, tt.want)
			}
		})
	}
}
