package features_test

import (
	"context"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	"github.com/streaming-mlops/mlops/services/features/internal/features"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/service/servicetest"
)

// serve runs s on a loopback gRPC server for the test and returns a client.
func serve(t *testing.T, s *features.Server) featuresv1.FeatureServiceClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Error(err)
		}
		g.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return featuresv1.NewFeatureServiceClient(conn)
}

func TestGetFeatureSpec(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: servicetest.FreeAddr(t)})
	defer rdb.Close()
	client := serve(t, features.New(testConfig(outTopic, "unused:"), rdb, testLogger(t), prometheus.NewRegistry()))
	resp, err := client.GetFeatureSpec(context.Background(), &featuresv1.GetFeatureSpecRequest{})
	if err != nil {
		t.Fatal(err)
	}
	spec := featurespec.Fraud()
	want := &featuresv1.FeatureSpec{Name: "fraud", Version: "1", Fingerprint: spec.Fingerprint()}
	for _, f := range spec.Features {
		want.Features = append(want.Features, &featuresv1.Feature{Name: f.Name, Description: f.Description})
	}
	if diff := cmp.Diff(want, resp.GetSpec(), protocmp.Transform()); diff != "" {
		t.Errorf("GetFeatureSpec (-want +got):\n%s", diff)
	}
}

func TestGetOnlineFeatures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := testRedis(t)
	s := features.New(testConfig(outTopic, prefix), rdb, testLogger(t), prometheus.NewRegistry())
	client := serve(t, s)

	// History of acct-0 through the stream: testTx(0), (5), ..., (45).
	var history []*eventsv1.Transaction
	var msgs []kafka.Message
	for i := 0; i < 50; i += 5 {
		history = append(history, testTx(i))
		msgs = append(msgs, testRecord(t, i, testTx(i)))
	}
	published := handle(t, s, msgs...)
	next := testTx(50)
	want := reference(t, append(history, next))[next.GetTransactionId()]

	t.Run("read-only leaves state unchanged", func(t *testing.T) {
		before := dumpKeys(t, rdb, prefix)
		for range 3 {
			resp, err := client.GetOnlineFeatures(ctx, &featuresv1.GetOnlineFeaturesRequest{Transaction: next})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, resp.GetVector().GetValues()); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if len(resp.GetVector().GetNames()) != 0 {
				t.Errorf("names %v without include_names", resp.GetVector().GetNames())
			}
		}
		if diff := cmp.Diff(before, dumpKeys(t, rdb, prefix)); diff != "" {
			t.Errorf("GetOnlineFeatures(record=false) changed Redis (-before +after):\n%s", diff)
		}
	})

	t.Run("already applied returns the published vector", func(t *testing.T) {
		resp, err := client.GetOnlineFeatures(ctx, &featuresv1.GetOnlineFeaturesRequest{Transaction: history[3], IncludeNames: true})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetVector()
		if diff := cmp.Diff(featurespec.Fraud().Names(), got.GetNames()); diff != "" {
			t.Errorf("names (-want +got):\n%s", diff)
		}
		got.Names = nil
		if diff := cmp.Diff(decodeFV(t, published[3].Output[0]), got, protocmp.Transform()); diff != "" {
			t.Errorf("vector (-published +got):\n%s", diff)
		}
	})

	t.Run("record is idempotent and matches the stream", func(t *testing.T) {
		md := metadata.Pairs("traceparent", traceparentOf(0))
		var first *eventsv1.FeatureVector
		for range 2 {
			resp, err := client.GetOnlineFeatures(metadata.NewOutgoingContext(ctx, md), &featuresv1.GetOnlineFeaturesRequest{Transaction: next, Record: true})
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = resp.GetVector()
				if diff := cmp.Diff(want, first.GetValues()); diff != "" {
					t.Errorf("values (-want +got):\n%s", diff)
				}
				if first.GetTrace().GetTraceparent() != traceparentOf(0) {
					t.Errorf("trace %v, want the call's traceparent", first.GetTrace())
				}
			} else if !proto.Equal(first, resp.GetVector()) {
				t.Errorf("second record call returned %v, first %v", resp.GetVector(), first)
			}
		}
		if got := txCount(t, rdb, prefix, "acct-0"); got != uint64(len(history)+1) {
			t.Errorf("TxCount = %d, want %d", got, len(history)+1)
		}
		// The same transaction arriving on the stream afterwards is a replay.
		res := handle(t, s, testRecord(t, 50, next))
		if diff := cmp.Diff(first, decodeFV(t, res[0].Output[0]), protocmp.Transform()); diff != "" {
			t.Errorf("stream after record (-record +stream):\n%s", diff)
		}
		if got := txCount(t, rdb, prefix, "acct-0"); got != uint64(len(history)+1) {
			t.Errorf("TxCount after the stream replay = %d, want %d", got, len(history)+1)
		}
	})
}

func TestGetOnlineFeaturesErrors(t *testing.T) {
	t.Parallel()
	up := redis.NewClient(&redis.Options{Addr: servicetest.FreeAddr(t), MaxRetries: -1})
	defer up.Close()
	client := serve(t, features.New(testConfig(outTopic, "unused:"), up, testLogger(t), prometheus.NewRegistry()))
	noAccount := testTx(1)
	noAccount.AccountId = ""
	tests := []struct {
		name string
		req  *featuresv1.GetOnlineFeaturesRequest
		want codes.Code
	}{
		{"no transaction", &featuresv1.GetOnlineFeaturesRequest{}, codes.InvalidArgument},
		{"no account", &featuresv1.GetOnlineFeaturesRequest{Transaction: noAccount}, codes.InvalidArgument},
		{"redis down, read", &featuresv1.GetOnlineFeaturesRequest{Transaction: testTx(1)}, codes.Unavailable},
		{"redis down, record", &featuresv1.GetOnlineFeaturesRequest{Transaction: testTx(1), Record: true}, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := client.GetOnlineFeatures(context.Background(), tt.req)
			if status.Code(err) != tt.want {
				t.Errorf("GetOnlineFeatures() = %v, want code %v", err, tt.want)
			}
		})
	}
}
