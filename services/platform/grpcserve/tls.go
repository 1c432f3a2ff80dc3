package grpcserve

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// Credentials loads the files of cfg and returns the server option that makes the server
// speak TLS (and require client certificates when cfg.ClientCAFile is set), or an option that
// changes nothing when TLS is off. Pass it to New.
func Credentials(cfg tlsconf.Server) (grpc.ServerOption, error) {
	tc, err := cfg.Load()
	if err != nil {
		return nil, fmt.Errorf("grpc server tls: %w", err)
	}
	if tc == nil {
		return grpc.EmptyServerOption{}, nil
	}
	return grpc.Creds(credentials.NewTLS(tc)), nil
}

// DialCredentials loads the files of cfg and returns the client's transport credentials:
// TLS (with a client certificate for mutual TLS when cfg has one) or plain text when TLS is
// off.
func DialCredentials(cfg tlsconf.Client) (grpc.DialOption, error) {
	tc, err := cfg.Load()
	if err != nil {
		return nil, fmt.Errorf("grpc client tls: %w", err)
	}
	if tc == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(tc)), nil
}

// PeerCommonName returns the subject common name of the client certificate the caller of a
// handler presented and the server verified (mutual TLS), or "" when the call carries none.
func PeerCommonName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return ti.State.VerifiedChains[0][0].Subject.CommonName
}
