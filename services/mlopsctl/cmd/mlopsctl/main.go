// Command mlopsctl is the platform's command-line tool: health of the stack and the services
// today; training, model registry operations, drift status and sample traffic as they land.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streaming-mlops/mlops/services/mlopsctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mlopsctl: %v\n", err)
		os.Exit(1)
	}
}
