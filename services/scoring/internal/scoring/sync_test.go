package scoring

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/events/v1"
	featuresv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/features/v1"
	scoringv1 "github.com/streaming-mlops/mlops/proto/gen/go/mlops/scoring/v1"
	"github.com/streaming-mlops/mlops/services/platform/featurespec"
	"github.com/streaming-mlops/mlops/services/platform/grpcserve"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio"
	"github.com/streaming-mlops/mlops/services/platform/kafkaio/kafkaiotest"
	"github.com/streaming-mlops/mlops/services/platform/lightgbm"
	"github.com/streaming-mlops/mlops/services/scoring/internal/scoring/scoringtest"

	"github.com/prometheus/client_golang/prometheus"
)

// featureService is a tiny FeatureService for tests: it computes the fraud vector of a
// transaction with featurespec.Compute for an account without history (read-only).
type featureService struct {
	featuresv1.UnimplementedFeatureServiceServer
}

func (featureService) GetOnlineFeatures(_ context.Context, req *featuresv1.GetOnlineFeaturesRequest) (*featuresv1.GetOnlineFeaturesResponse, error) {
	tx := req.GetTransaction()
	in := featurespec.Input{Amount: tx.GetAmount(), Time: tx.GetEventTime().AsTime(), Latitude: tx.GetLatitude(), Longitude: tx.GetLongitude(),
		Country: tx.GetCountry(), MerchantID: tx.GetMerchantId(), DeviceID: tx.GetDeviceId()}
	if err := in.Validate(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	out := make([]float64, featurespec.FraudLen)
	if err := featurespec.Compute(nil, in, out); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &featuresv1.GetOnlineFeaturesResponse{Vector: &eventsv1.FeatureVector{
		EventTime: tx.GetEventTime(), TransactionId: tx.GetTransactionId(), AccountId: tx.GetAccountId(),
		SpecName: "fraud", SpecVersion: "1", Values: out, Amount: tx.GetAmount(), Currency: tx.GetCurrency(),
	}}, nil
}

// serveGRPC starts a gRPC server on a loopback port with register and returns a client
// connection to it.
func serveGRPC(t testing.TB, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	srv := grpcserve.New("127.0.0.1:0", register, discard(), prometheus.NewRegistry(), 5*time.Second)
	runActor(t, "grpc", srv.Actor().Run)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := srv.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestSyncScore(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	want := expectedScores(t, l, text, d, lightgbm.PredictNormal)

	fconn := serveGRPC(t, func(g *grpc.Server) { featuresv1.RegisterFeatureServiceServer(g, featureService{}) })
	brokers := kafkaiotest.StartBroker(t)
	predTopic := kafkaiotest.UniqueName("predictions")
	kafkaiotest.CreateTopics(t, brokers, 1, predTopic)
	cfg := testConfig(t)
	cfg.PredictionsTopic = predTopic
	cfg.Kafka.Brokers = brokers
	cfg.FeaturesTimeout = 10 * time.Second // the in-test FeatureService answers at once; 200ms is too tight for -race on busy cores
	producer, err := kafkaio.NewProducer(cfg.Kafka, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t, cfg, Deps{Features: featuresv1.NewFeatureServiceClient(fconn), Producer: producer}, localModel(t, l, text, "3", 0.5))
	runActor(t, "sync log", s.SyncLogActor().Run)
	client := scoringv1.NewScoringServiceClient(serveGRPC(t, s.Register))

	tx := &eventsv1.Transaction{EventId: "e1", EventTime: timestamppb.New(time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)),
		TransactionId: "tx-sync-tx", AccountId: "acc-1", Amount: 4999, Currency: "EUR", MerchantId: "m1", DeviceId: "d1", Country: "DE"}
	txVec, err := featureService{}.GetOnlineFeatures(t.Context(), &featuresv1.GetOnlineFeaturesRequest{Transaction: tx})
	if err != nil {
		t.Fatal(err)
	}
	txWant := expectedScores(t, l, text, &scoringtest.Data{Rows: 1, Width: featurespec.FraudLen, X: txVec.Vector.Values}, lightgbm.PredictNormal)[0]
	short := vector(d, 2, "sync")
	short.Values = short.Values[:4]
	other := vector(d, 2, "sync")
	other.SpecName = "purchase"

	tests := []struct {
		name      string
		req       *scoringv1.ScoreRequest
		wantCode  codes.Code
		wantScore float64
		wantTx    string
	}{
		{name: "features in request", req: &scoringv1.ScoreRequest{Features: vector(d, 5, "sync"), Explain: true}, wantScore: want[5], wantTx: "tx-sync-5"},
		{name: "transaction via feature service", req: &scoringv1.ScoreRequest{Transaction: tx}, wantScore: txWant, wantTx: "tx-sync-tx"},
		{name: "nothing to score", req: &scoringv1.ScoreRequest{}, wantCode: codes.InvalidArgument},
		{name: "transaction without ids", req: &scoringv1.ScoreRequest{Transaction: &eventsv1.Transaction{Amount: 1}}, wantCode: codes.InvalidArgument},
		{name: "bad transaction for the feature service", req: &scoringv1.ScoreRequest{Transaction: &eventsv1.Transaction{TransactionId: "t", AccountId: "a", Amount: -5, EventTime: timestamppb.Now()}}, wantCode: codes.InvalidArgument},
		{name: "short vector", req: &scoringv1.ScoreRequest{Features: short}, wantCode: codes.InvalidArgument},
		{name: "other spec", req: &scoringv1.ScoreRequest{Features: other}, wantCode: codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := client.Score(t.Context(), tt.req)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("Score() = %v, want code %v", err, tt.wantCode)
			}
			if err != nil {
				return
			}
			if resp.Score != tt.wantScore || resp.TransactionId != tt.wantTx || resp.ModelVersion != "3" || resp.Threshold != 0.5 ||
				resp.Task != eventsv1.Task_TASK_BINARY_CLASSIFICATION || resp.Latency.GetInferenceSeconds() <= 0 {
				t.Errorf("Score() = %v, want score %v for %s from version 3", resp, tt.wantScore, tt.wantTx)
			}
			if (resp.Explanation != nil) != tt.req.Explain {
				t.Errorf("explanation %v, requested %v", resp.Explanation, tt.req.Explain)
			}
		})
	}
	t.Run("batch in order", func(t *testing.T) {
		t.Parallel()
		var reqs []*scoringv1.ScoreRequest
		for i := range 20 {
			reqs = append(reqs, &scoringv1.ScoreRequest{Features: vector(d, 100+i, "batch")})
		}
		resp, err := client.ScoreBatch(t.Context(), &scoringv1.ScoreBatchRequest{Requests: reqs})
		if err != nil || len(resp.Responses) != 20 {
			t.Fatalf("ScoreBatch() = %v, %v", resp, err)
		}
		for i, r := range resp.Responses {
			if r.Score != want[100+i] {
				t.Errorf("response %d score %v, want %v", i, r.Score, want[100+i])
			}
		}
		reqs[7] = &scoringv1.ScoreRequest{}
		if _, err := client.ScoreBatch(t.Context(), &scoringv1.ScoreBatchRequest{Requests: reqs}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ScoreBatch() with an empty request = %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("serving model", func(t *testing.T) {
		t.Parallel()
		resp, err := client.GetServingModel(t.Context(), &scoringv1.GetServingModelRequest{})
		if err != nil || resp.Champion.GetModelVersion() != "3" || resp.Champion.GetAlias() != "champion" || resp.Champion.GetFeatureSpecVersion() != "1" ||
			resp.Champion.GetSha256() != s.champion.peek().SHA256 || resp.Challenger != nil {
			t.Errorf("GetServingModel() = %v, %v", resp, err)
		}
	})
	t.Run("logged to predictions", func(t *testing.T) {
		t.Parallel()
		if _, err := client.Score(t.Context(), &scoringv1.ScoreRequest{Features: vector(d, 9, "logged")}); err != nil {
			t.Fatal(err)
		}
		var got *eventsv1.Prediction
		kafkaiotest.WaitFor(t, 20*time.Second, "sync prediction on the predictions topic", func() (bool, error) {
			for _, m := range kafkaiotest.ReadTopic(t, brokers, predTopic) {
				var p eventsv1.Prediction
				if err := proto.Unmarshal(m.Value, &p); err != nil {
					return false, err
				}
				if string(m.Key) == "tx-logged-9" {
					got = &p
					return true, nil
				}
			}
			return false, nil
		})
		if got.Path != eventsv1.ScoringPath_SCORING_PATH_SYNC || got.Score != want[9] || got.ModelVersion != "3" || got.Features.GetTransactionId() != "tx-logged-9" {
			t.Errorf("logged prediction = %v", got)
		}
	})
}

func TestSyncScoreUnavailable(t *testing.T) {
	t.Parallel()
	l := lib(t)
	d := scoringtest.FraudData(t)
	text := scoringtest.TrainModel(t, l, 20)
	// A feature service address nobody listens on.
	dead, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dead.Close() })
	tx := &eventsv1.Transaction{TransactionId: "t", AccountId: "a", Amount: 1, EventTime: timestamppb.Now()}
	tests := []struct {
		name  string
		model bool
		req   *scoringv1.ScoreRequest
	}{
		{name: "no model loaded", model: false, req: &scoringv1.ScoreRequest{Features: vector(d, 1, "u")}},
		{name: "feature service down", model: true, req: &scoringv1.ScoreRequest{Transaction: tx}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m *Model
			if tt.model {
				m = localModel(t, l, text, "1", 0.8)
			}
			s, _ := newTestServer(t, testConfig(t), Deps{Features: featuresv1.NewFeatureServiceClient(dead)}, m)
			client := scoringv1.NewScoringServiceClient(serveGRPC(t, s.Register))
			if _, err := client.Score(t.Context(), tt.req); status.Code(err) != codes.Unavailable {
				t.Errorf("Score() = %v, want UNAVAILABLE", err)
			}
			if err := s.Ready(t.Context()); (err == nil) != tt.model {
				t.Errorf("Ready() = %v with model loaded %v", err, tt.model)
			}
		})
	}
}
