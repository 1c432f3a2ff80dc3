// Command grpcecho is a bare gRPC server for benchmarks: it answers every unary call on any
// method with -reply-bytes bytes (or the content of -reply-file) without decoding the request,
// so a load run against it measures the transport alone with the request and response sizes of
// a real service.
//
//	grpcecho -addr 127.0.0.1:9099 -reply-bytes 120
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/streaming-mlops/mlops/loadtest/grpcload"
	"github.com/streaming-mlops/mlops/services/platform/flagenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "grpcecho: %v\n", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("grpcecho", flag.ContinueOnError)
	addr := flagenv.String(fs, getenv, "addr", "GRPCECHO_ADDR", "127.0.0.1:9099", "listen address")
	n := flagenv.Int(fs, getenv, "reply-bytes", "GRPCECHO_REPLY_BYTES", 64, "size of the reply")
	file := flagenv.String(fs, getenv, "reply-file", "GRPCECHO_REPLY_FILE", "", "reply with this file's bytes instead")
	if err := flagenv.Parse(fs, args); err != nil {
		return err
	}
	reply := make([]byte, max(*n, 0))
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		reply = b
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := grpcload.NewEchoServer(reply)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	fmt.Fprintf(os.Stderr, "grpcecho: serving on %s, %d-byte replies\n", lis.Addr(), len(reply))
	select {
	case <-ctx.Done():
		srv.GracefulStop()
		return <-done // nil after GracefulStop
	case err := <-done:
		return errors.Join(err, lis.Close())
	}
}
