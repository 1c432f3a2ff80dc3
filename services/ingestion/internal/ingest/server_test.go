package ingest

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	ingestv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/ingest/v1"
	"github.com/streaming-mlops/mlops/proto/topics"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
)

// grpcFixture is an ingestion server on a loopback listener, publishing to brokers.
type grpcFixture struct {
	client    ingestv1.IngestServiceClient
	srv       *Server
	reg       *prometheus.Registry
	brokers   []string
	validated string
}

func startGRPC(t *testing.T, brokers []string, createTopics bool) *grpcFixture {
	t.Helper()
	validated := kafkaiotest.UniqueName("validated")
	if createTopics {
		kafkaiotest.CreateTopics(t, brokers, 3, validated)
	}
	reg := prometheus.NewRegistry()
	s := newTestServer(t, testConfig(t, brokers, "raw", validated, "dlq"), reg)
	g := grpc.NewServer()
	s.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &grpcFixture{client: ingestv1.NewIngestServiceClient(conn), srv: s, reg: reg, brokers: brokers, validated: validated}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestIngest(t *testing.T) {
	t.Parallel()
	f := startGRPC(t, kafkaiotest.StartBroker(t), true)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := metadata.AppendToOutgoingContext(ctxT(t), topics.HeaderTraceparent, traceparent)

	valid := validTx()
	valid.EventId = ""
	resp, err := f.client.Ingest(ctx, &ingestv1.IngestRequest{Transaction: valid})
	if err != nil || !resp.Accepted || resp.EventId == "" || resp.TransactionId != valid.TransactionId {
		t.Fatalf("Ingest(valid) = %v, %v; want accepted with an event id", resp, err)
	}
	// A retry of the same transaction is accepted again, with the same event id.
	again, err := f.client.Ingest(ctx, &ingestv1.IngestRequest{Transaction: valid})
	if err != nil || !again.Accepted || again.EventId != resp.EventId {
		t.Errorf("Ingest(retry) = %v, %v; want accepted with event id %s", again, err, resp.EventId)
	}
	// A different transaction reusing the id is a duplicate.
	dup := validTx()
	dup.Amount = 1
	_, err = f.client.Ingest(ctx, &ingestv1.IngestRequest{Transaction: dup})
	if diff := cmp.Diff([]*errdetails.BadRequest_FieldViolation{{Field: "transaction_id", Reason: strings.ToUpper(CodeDuplicate), Description: violations(t, err)[0].GetDescription()}}, violations(t, err), cmpProto()); diff != "" {
		t.Errorf("Ingest(duplicate) violations (-want +got):\n%s", diff)
	}

	invalid := validTx()
	invalid.TransactionId = "tx-invalid"
	invalid.Currency = "eur"
	invalid.Amount = -5
	_, err = f.client.Ingest(ctx, &ingestv1.IngestRequest{Transaction: invalid})
	want := []*errdetails.BadRequest_FieldViolation{
		{Field: "amount", Reason: strings.ToUpper(CodeRange), Description: "amount: must not be negative, got -5"},
		{Field: "currency", Reason: strings.ToUpper(CodeFormat), Description: `currency: "eur" must be upper case (EUR)`},
	}
	if diff := cmp.Diff(want, violations(t, err), cmpProto()); diff != "" {
		t.Errorf("Ingest(invalid) violations (-want +got):\n%s", diff)
	}

	// The published records: two (the retry is published again), keyed by account id,
	// carrying the caller's trace.
	out := kafkaiotest.ReadTopic(t, f.brokers, f.validated)
	if len(out) != 2 {
		t.Fatalf("validated topic has %d records, want 2", len(out))
	}
	for _, m := range out {
		var tx eventsv1.Transaction
		if err := proto.Unmarshal(m.Value, &tx); err != nil {
			t.Fatal(err)
		}
		tp, _ := kafkaio.HeaderValue(m.Headers, topics.HeaderTraceparent)
		if string(m.Key) != valid.AccountId || tx.EventId != resp.EventId || string(tp) != traceparent || !tx.IngestedAt.AsTime().Equal(testNow) {
			t.Errorf("record key %q event %q traceparent %q ingested %v", m.Key, tx.EventId, tp, tx.IngestedAt.AsTime())
		}
	}
	if got := testutil.ToFloat64(f.srv.metrics.event(sourceGRPC, outcomeOK)); got != 2 {
		t.Errorf("grpc ok = %v, want 2", got)
	}
	if got := testutil.ToFloat64(f.srv.metrics.event(sourceGRPC, outcomeInvalid)); got != 2 {
		t.Errorf("grpc invalid = %v, want 2", got)
	}
}

func TestIngestMissingTransaction(t *testing.T) {
	t.Parallel()
	f := startGRPC(t, []string{"127.0.0.1:1"}, false)
	_, err := f.client.Ingest(ctxT(t), &ingestv1.IngestRequest{})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("Ingest(no transaction) = %v, want INVALID_ARGUMENT", err)
	}
	var violations []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			violations = append(violations, br.FieldViolations...)
		}
	}
	want := []*errdetails.BadRequest_FieldViolation{{Field: "transaction", Description: "transaction: required", Reason: "REQUIRED"}}
	if diff := cmp.Diff(want, violations, cmpProto()); diff != "" {
		t.Errorf("BadRequest field violations (-want +got):\n%s", diff)
	}
}

func TestIngestUnavailable(t *testing.T) {
	t.Parallel()
	f := startGRPC(t, []string{"127.0.0.1:1"}, false) // nothing listens there
	_, err := f.client.Ingest(ctxT(t), &ingestv1.IngestRequest{Transaction: validTx()})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Ingest with Kafka down = %v, want UNAVAILABLE", err)
	}
	if got := testutil.ToFloat64(f.srv.metrics.event(sourceGRPC, outcomeError)); got != 1 {
		t.Errorf("grpc error = %v, want 1", got)
	}
}

func TestIngestStream(t *testing.T) {
	t.Parallel()
	f := startGRPC(t, kafkaiotest.StartBroker(t), true)
	stream, err := f.client.IngestStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // more than one flush group
	var wantRejected []int64
	for i := range n {
		tx := validTx()
		tx.TransactionId = "s-" + string(rune('a'+i%26)) + "-" + time.Duration(i).String()
		req := &ingestv1.IngestStreamRequest{Transaction: tx}
		switch i % 50 {
		case 7:
			tx.Amount = 0
			wantRejected = append(wantRejected, int64(i))
		case 9:
			req.Transaction = nil
			wantRejected = append(wantRejected, int64(i))
		}
		if err := stream.Send(req); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("CloseAndRecv: %v", err)
	}
	if resp.Accepted != int64(n-len(wantRejected)) || resp.Rejected != int64(len(wantRejected)) {
		t.Errorf("accepted %d rejected %d, want %d and %d", resp.Accepted, resp.Rejected, n-len(wantRejected), len(wantRejected))
	}
	var gotRejected []int64
	for _, r := range resp.Errors {
		gotRejected = append(gotRejected, r.Index)
		if len(r.Errors) == 0 || (r.Errors[0].Field != "amount" && r.Errors[0].Field != "transaction") {
			t.Errorf("rejected %d: errors %v", r.Index, r.Errors)
		}
	}
	if !slices.Equal(gotRejected, wantRejected) {
		t.Errorf("rejected indexes %v, want %v", gotRejected, wantRejected)
	}
	if out := kafkaiotest.ReadTopic(t, f.brokers, f.validated); len(out) != int(resp.Accepted) {
		t.Errorf("validated topic has %d records, want %d", len(out), resp.Accepted)
	}
}

// violations returns the BadRequest field violations of an INVALID_ARGUMENT error, failing
// the test for any other outcome.
func violations(t *testing.T, err error) []*errdetails.BadRequest_FieldViolation {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("error %v, want INVALID_ARGUMENT", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()
		}
	}
	t.Fatalf("INVALID_ARGUMENT without field violations: %v", err)
	return nil
}
