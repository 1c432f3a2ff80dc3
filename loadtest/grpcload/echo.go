package grpcload

import (
	"google.golang.org/grpc"
)

// NewEchoServer returns a gRPC server that answers every unary call on any method with reply,
// without decoding the request: the transport's cost alone (HTTP/2, framing, the gRPC stack), to
// compare a real service against with the same request and response sizes. It speaks the same
// passthrough codec as the client.
func NewEchoServer(reply []byte) *grpc.Server {
	return grpc.NewServer(grpc.ForceServerCodec(RawCodec{}),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			var req []byte
			if err := stream.RecvMsg(&req); err != nil {
				return err
			}
			return stream.SendMsg(&reply)
		}))
}
